"""Directory of parties: the facts eligibility needs (AM-1, AM-4), in the ledger's database.

Readable and writable from the starter CLI (`python -m starter client ...`, `creator ...`, `agency ...`).
"""

from __future__ import annotations

from temporalio import activity

from activities.db import Database, Tx
from activities.directory_schema import DDL, PENALTY_DDL
from activities.penalty_register import ActiveRestriction, HeldSettlement, PenaltyRegister, payee_party
from ports import directory as port
from ports.directory import PartyRequest
from workflows.rules.eligibility import ClientFacts, CreatorFacts, CreatorKind, PenaltyFact

# The penalty register (activities/penalty_register.py) shares the directory's database and flags.
__all__ = ["DDL", "PENALTY_DDL", "ActiveRestriction", "Directory", "DirectoryActivities", "HeldSettlement",
           "PenaltyRegister", "payee_party"]

CLIENT_FLAGS = (
    "active",
    "qualification_passed",
    "corporate_verified",
    "brand_certified",
    "penalty_restricted",
    "mount_allow_listed",
)
CREATOR_FLAGS = ("onboarded", "order_taking_closed", "mount_barred")


class Directory:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(DDL, DDL)
        db.ensure_schema(PENALTY_DDL, PENALTY_DDL)  # the facts name the violation cases in force

    def put_client(self, facts: ClientFacts) -> None:
        values = [int(getattr(facts, f)) for f in CLIENT_FLAGS]
        cols = ", ".join(CLIENT_FLAGS)
        marks = ", ".join("?" for _ in CLIENT_FLAGS)
        updates = ", ".join(f"{f} = excluded.{f}" for f in CLIENT_FLAGS)
        with self.db.transaction() as tx:
            tx.execute(
                f"INSERT INTO directory_clients (client_id, {cols}) VALUES (?, {marks}) "
                f"ON CONFLICT (client_id) DO UPDATE SET {updates}",
                [facts.client_id, *values],
            )

    def put_agency(self, agency_id: str, deposit_ever_deducted: bool = False) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO directory_agencies (agency_id, deposit_ever_deducted) VALUES (?, ?) "
                "ON CONFLICT (agency_id) DO UPDATE SET deposit_ever_deducted = excluded.deposit_ever_deducted",
                [agency_id, int(deposit_ever_deducted)],
            )

    def put_creator(self, facts: CreatorFacts) -> None:
        values = [int(getattr(facts, f)) for f in CREATOR_FLAGS]
        updates = ", ".join(f"{f} = excluded.{f}" for f in ("kind", "agency_id", *CREATOR_FLAGS))
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO directory_creators (creator_id, kind, agency_id, onboarded, order_taking_closed, "
                f"mount_barred) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (creator_id) DO UPDATE SET {updates}",
                [facts.creator_id, facts.kind.value, facts.agency_id, *values],
            )

    def client(self, client_id: str) -> ClientFacts:
        with self.db.transaction() as tx:
            row = tx.fetchone(
                f"SELECT {', '.join(CLIENT_FLAGS)} FROM directory_clients WHERE client_id = ?", [client_id]
            )
            penalties = _penalties_in_force(tx, "client", client_id)
        if row is None:
            return ClientFacts(client_id=client_id, known=False)
        return ClientFacts(client_id=client_id, penalties=penalties,
                           **{f: bool(v) for f, v in zip(CLIENT_FLAGS, row, strict=True)})

    def creator(self, creator_id: str) -> CreatorFacts:
        with self.db.transaction() as tx:
            row = tx.fetchone(
                f"SELECT kind, agency_id, {', '.join(CREATOR_FLAGS)} FROM directory_creators WHERE creator_id = ?",
                [creator_id],
            )
            if row is None:
                return CreatorFacts(creator_id=creator_id, known=False)
            kind = CreatorKind(row[0])
            agency_id = creator_id if kind is CreatorKind.AGENCY else row[1]
            deducted = False
            if agency_id:
                agency = tx.fetchone(
                    "SELECT deposit_ever_deducted FROM directory_agencies WHERE agency_id = ?", [agency_id]
                )
                deducted = bool(agency[0]) if agency else False
            penalties = _penalties_in_force(tx, "creator", creator_id)
        return CreatorFacts(
            penalties=penalties,
            creator_id=creator_id,
            kind=kind,
            agency_id=row[1],
            agency_deposit_ever_deducted=deducted,
            **{f: bool(v) for f, v in zip(CREATOR_FLAGS, row[2:], strict=True)},
        )


def _penalties_in_force(tx: Tx, party_kind: str, party_id: str) -> list[PenaltyFact]:
    rows = tx.fetchall("SELECT r.case_id, r.penalty_id, r.restriction, t.task_id FROM penalty_restrictions r"
                       " LEFT JOIN penalty_task_removals t ON t.case_id = r.case_id AND t.penalty_id = r.penalty_id"
                       " WHERE r.party_kind = ? AND r.party_id = ? AND r.lifted_at IS NULL"
                       " ORDER BY r.applied_at, r.case_id, r.penalty_id", [party_kind, party_id])
    return [PenaltyFact(case_id=r[0], penalty_id=r[1], restriction=r[2], task_id=r[3]) for r in rows]


class DirectoryActivities:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    @activity.defn(name=port.CLIENT_FACTS.name)
    def client_facts(self, request: PartyRequest) -> ClientFacts:
        return self.directory.client(request.party_id)

    @activity.defn(name=port.CREATOR_FACTS.name)
    def creator_facts(self, request: PartyRequest) -> CreatorFacts:
        return self.directory.creator(request.party_id)
