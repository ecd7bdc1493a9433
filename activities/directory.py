"""Directory of parties: the facts eligibility needs (AM-1, AM-4), in the ledger's database.

Readable and writable from the starter CLI (`python -m starter client ...`, `creator ...`, `agency ...`).
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from activities.db import Database
from workflows.rules.eligibility import ClientFacts, CreatorFacts, CreatorKind

DDL = """
CREATE TABLE IF NOT EXISTS directory_clients (
    client_id TEXT PRIMARY KEY,
    active INTEGER NOT NULL DEFAULT 0,
    qualification_passed INTEGER NOT NULL DEFAULT 0,
    corporate_verified INTEGER NOT NULL DEFAULT 0,
    brand_certified INTEGER NOT NULL DEFAULT 0,
    penalty_restricted INTEGER NOT NULL DEFAULT 0,
    mount_allow_listed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS directory_agencies (
    agency_id TEXT PRIMARY KEY,
    deposit_ever_deducted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS directory_creators (
    creator_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('natural', 'pgc', 'mcn', 'agency')),
    agency_id TEXT,
    onboarded INTEGER NOT NULL DEFAULT 0,
    order_taking_closed INTEGER NOT NULL DEFAULT 0,
    mount_barred INTEGER NOT NULL DEFAULT 0
);
"""

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
        if row is None:
            return ClientFacts(client_id=client_id, known=False)
        return ClientFacts(client_id=client_id, **{f: bool(v) for f, v in zip(CLIENT_FLAGS, row)})

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
        return CreatorFacts(
            creator_id=creator_id,
            kind=kind,
            agency_id=row[1],
            agency_deposit_ever_deducted=deducted,
            **{f: bool(v) for f, v in zip(CREATOR_FLAGS, row[2:])},
        )


class PartyRequest(BaseModel):
    party_id: str


class DirectoryActivities:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    @activity.defn(name="directory.client_facts")
    def client_facts(self, request: PartyRequest) -> ClientFacts:
        return self.directory.client(request.party_id)

    @activity.defn(name="directory.creator_facts")
    def creator_facts(self, request: PartyRequest) -> CreatorFacts:
        return self.directory.creator(request.party_id)
