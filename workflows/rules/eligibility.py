"""Who may publish (AM-1) and who may join (AM-4). Plain verdicts over facts the directory supplies."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class ClientFacts(BaseModel):
    client_id: str
    known: bool = True
    active: bool = False
    qualification_passed: bool = False
    corporate_verified: bool = False
    brand_certified: bool = False
    penalty_restricted: bool = False
    mount_allow_listed: bool = False


class CreatorKind(StrEnum):
    NATURAL = "natural"
    PGC = "pgc"
    MCN = "mcn"  # bound to an MCN agency, which is paid the creator's fees
    AGENCY = "agency"  # an MCN agency taking a task itself


class CreatorFacts(BaseModel):
    creator_id: str
    known: bool = True
    kind: CreatorKind = CreatorKind.NATURAL
    agency_id: str | None = None
    onboarded: bool = False
    order_taking_closed: bool = False
    mount_barred: bool = False
    # Facts of the MCN agency the creator is bound to (or of the creator itself when it is an agency).
    agency_deposit_ever_deducted: bool = False


def client_publication_refusals(facts: ClientFacts) -> list[str]:
    """AM-1: every failed condition, in a stable order; empty when the client may publish."""
    if not facts.known:
        return [f"client {facts.client_id} is not registered"]
    checks = [
        (facts.active, "client account is not active"),
        (facts.qualification_passed, "client has not passed qualification review"),
        (facts.corporate_verified, "client has not passed corporate-account verification"),
        (facts.brand_certified, "client has not passed brand certification"),
        (not facts.penalty_restricted, "client is restricted by a violation penalty"),
        (facts.mount_allow_listed, "client is not on the platform's allow list for authorized-mount tasks"),
    ]
    return [reason for ok, reason in checks if not ok]


def creator_join_refusals(facts: CreatorFacts) -> list[str]:
    """AM-4: every failed condition; empty when the creator may join an authorized-mount task."""
    if not facts.known:
        return [f"creator {facts.creator_id} is not registered"]
    reasons: list[str] = []
    if facts.kind in (CreatorKind.MCN, CreatorKind.AGENCY):
        if facts.kind is CreatorKind.MCN and not facts.agency_id:
            reasons.append("MCN creator is not bound to an MCN agency")
        if facts.agency_deposit_ever_deducted:
            reasons.append("the MCN agency has had its deposit deducted")
    elif not facts.onboarded:
        reasons.append("creator is not onboarded and able to use the platform")
    if facts.mount_barred:
        reasons.append("creator is restricted from authorized-mount tasks")
    if facts.order_taking_closed:
        reasons.append("creator's order-taking is closed")
    return reasons


def payee_account(facts: CreatorFacts) -> str:
    """AM-12: an MCN creator's fees are paid to its agency; everyone else is paid directly."""
    if facts.kind is CreatorKind.MCN and facts.agency_id:
        return f"agency:{facts.agency_id}:payable"
    if facts.kind is CreatorKind.AGENCY:
        return f"agency:{facts.creator_id}:payable"
    return f"creator:{facts.creator_id}:payable"
