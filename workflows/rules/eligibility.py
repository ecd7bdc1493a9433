"""Who may publish (AM-1) and who may join (AM-4). Plain verdicts over facts the directory supplies."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class PenaltyFact(BaseModel):
    """A restriction a violation case has in force on the party (AM-18, R-12): which case, which penalty."""

    case_id: str
    penalty_id: str
    restriction: str  # a PenaltyKind value
    task_id: str | None = None  # remove_from_task: the task


class ClientFacts(BaseModel):
    client_id: str
    known: bool = True
    active: bool = False
    qualification_passed: bool = False
    corporate_verified: bool = False
    brand_certified: bool = False
    penalty_restricted: bool = False
    mount_allow_listed: bool = False
    penalties: list[PenaltyFact] = []


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
    penalties: list[PenaltyFact] = []


# what each penalty in force says about the party, in a refusal; the case is named after it.
CREATOR_REFUSING = {
    "bar_from_mount_tasks": "is barred from authorized-mount tasks",
    "close_order_taking": "has order-taking closed",
    "restrict_account": "has a restricted account",
    "ban_account": "has a banned account",
    "freeze_in_flight_tasks": "has in-flight tasks frozen",
    "remove_from_task": "was removed from this task",
}
CLIENT_REFUSING = {
    "restrict_account": "has a restricted account",
    "ban_account": "has a banned account",
    "bar_from_mount_tasks": "is barred from authorized-mount tasks",
}
# Flags a penalty in force also sets (activities/directory.py): the flag's own reason is left out when a case
# already names it.
_FLAG_PENALTIES = {
    "mount_barred": ("bar_from_mount_tasks", "ban_account"),
    "order_taking_closed": ("close_order_taking", "restrict_account", "ban_account"),
    "penalty_restricted": ("restrict_account", "ban_account", "bar_from_mount_tasks"),
}


def _by_case(party: str, party_id: str, penalties: list[PenaltyFact], refusing: dict[str, str],
             task_id: str | None) -> list[str]:
    return [f"{party} {party_id} {refusing[p.restriction]} by violation case {p.case_id} (penalty {p.penalty_id})"
            for p in penalties if p.restriction in refusing
            and (p.restriction != "remove_from_task" or (task_id is not None and p.task_id == task_id))]


def _named(flag: str, penalties: list[PenaltyFact]) -> bool:
    return any(p.restriction in _FLAG_PENALTIES[flag] for p in penalties)


def creator_penalty_refusals(facts: CreatorFacts, task_id: str | None = None) -> list[str]:
    """R-12: a creator restricted, barred, closed for orders, frozen or removed from `task_id` by a violation case
    neither joins nor has a new piece mounted; each reason names the case."""
    return _by_case("creator", facts.creator_id, facts.penalties, CREATOR_REFUSING, task_id)


def client_penalty_refusals(facts: ClientFacts) -> list[str]:
    """R-12, AM-1: a client restricted by a violation case cannot publish; each reason names the case."""
    return _by_case("client", facts.client_id, facts.penalties, CLIENT_REFUSING, None)


def client_publication_refusals(facts: ClientFacts) -> list[str]:
    """AM-1: every failed condition, in a stable order; empty when the client may publish."""
    if not facts.known:
        return [f"client {facts.client_id} is not registered"]
    checks = [
        (facts.active, "client account is not active"),
        (facts.qualification_passed, "client has not passed qualification review"),
        (facts.corporate_verified, "client has not passed corporate-account verification"),
        (facts.brand_certified, "client has not passed brand certification"),
        (not facts.penalty_restricted or _named("penalty_restricted", facts.penalties),
         "client is restricted by a violation penalty"),
        (facts.mount_allow_listed, "client is not on the platform's allow list for authorized-mount tasks"),
    ]
    return [reason for ok, reason in checks if not ok] + client_penalty_refusals(facts)


def creator_join_refusals(facts: CreatorFacts, task_id: str | None = None) -> list[str]:
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
    if facts.mount_barred and not _named("mount_barred", facts.penalties):
        reasons.append("creator is restricted from authorized-mount tasks")
    if facts.order_taking_closed and not _named("order_taking_closed", facts.penalties):
        reasons.append("creator's order-taking is closed")
    return reasons + creator_penalty_refusals(facts, task_id)


def payee_account(facts: CreatorFacts) -> str:
    """AM-12: an MCN creator's fees are paid to its agency; everyone else is paid directly."""
    if facts.kind is CreatorKind.MCN and facts.agency_id:
        return f"agency:{facts.agency_id}:payable"
    if facts.kind is CreatorKind.AGENCY:
        return f"agency:{facts.creator_id}:payable"
    return f"creator:{facts.creator_id}:payable"
