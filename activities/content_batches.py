"""A mounted piece's conversion batches, kept in the ledger's database (issue 21).

A piece used to carry every batch it had seen in its workflow state, across continue-as-new, so a hot piece grew
with its own conversions. Pieces that record `workflows.content_batches.BATCHES_PATCH` keep them here: the row's
primary key is the event id's uniqueness within the piece (R-1: a repeat counts once), and its grant is the
budget's own accrual row (`budget_accruals`, keyed by task and event id), so what a batch counts is never stored
twice. One call (`reconcile`) records what arrived, voids what the platform voided, gives back the grants of the
batches that no longer count and accrues those that do, judged by `workflows.rules.counting` (the rule the
workflow judges by), in one transaction. The budget row is locked only when a grant moves (a call that only
records a late batch or a void works on a closed task too); no other transaction writes the piece's rows, so the
order of locks cannot deadlock.

Idempotent: a batch carries the number the piece gave it (`seq`, its order of arrival); a retry of a call finds
its own numbers and answers as the first attempt did; a batch seen under another number is a repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from temporalio import activity

from activities.db import Database, Tx
from activities.ledger import Ledger, as_refusals
from ports.content_batches import (
    GIVE_BACK,
    RECONCILE,
    GiveBack,
    GivenBack,
    ReconcileBatches,
    ReconciledBatches,
)
from ports.ledger import AccrualItem
from workflows.contract.mounted_content import BatchRecord, IncomingBatch
from workflows.rules.counting import batch_counts

DDL = """
CREATE TABLE IF NOT EXISTS content_batches (
    task_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq BIGINT,
    count BIGINT,
    occurred_at TEXT,
    cheating INTEGER NOT NULL DEFAULT 0,
    late INTEGER NOT NULL DEFAULT 0,
    voided INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, content_id, event_id)
);
CREATE INDEX IF NOT EXISTS content_batches_by_seq ON content_batches (task_id, content_id, seq);
"""
# seq and count are NULL for a batch voided before it arrived: when it comes, it is recorded voided.

_KEY = "task_id = ? AND content_id = ? AND event_id = ?"
# The piece's batches with their grant: event id, count, occurred_at, cheating, late, voided, granted count and
# fen (NULL: never accrued), released.
_WITH_GRANT = ("SELECT b.event_id, b.count, b.occurred_at, b.cheating, b.late, b.voided, a.granted_count,"
               " a.granted_fen, a.released FROM content_batches b LEFT JOIN budget_accruals a"
               " ON a.task_id = b.task_id AND a.event_id = b.event_id WHERE b.task_id = ? AND b.content_id = ?")


class ContentBatches:
    def __init__(self, db: Database, ledger: Ledger) -> None:
        self.db, self.ledger = db, ledger
        db.ensure_schema(DDL, DDL)

    def reconcile(self, r: ReconcileBatches) -> ReconciledBatches:
        with self.db.transaction() as tx:
            fresh = self._record(tx, r)
            voided = self._void(tx, r)
            released, accrued, asked = ([], [], False) if r.fee_fixed else self._judge(tx, r, fresh, voided)
            counted = sum(a.granted_count for a in accrued)
            # As an accrual answers: the budget's exhaustion instant, once the budget was asked (a retry of a call
            # whose first try accrued asks it too, so the piece still hears that the budget is used up).
            exhausted = self.ledger._budget_row(tx, r.task_id)["exhausted_at"] if asked else None
            totals = tx.fetchone("SELECT COALESCE(SUM(a.granted_count), 0), COALESCE(SUM(a.granted_fen), 0)"
                                 " FROM content_batches b JOIN budget_accruals a ON a.task_id = b.task_id"
                                 " AND a.event_id = b.event_id WHERE b.task_id = ? AND b.content_id = ?"
                                 " AND a.released = 0", (r.task_id, r.content_id))
            shown = [b.event_id for b in fresh] + [eid for eid in r.shown if eid not in {b.event_id for b in fresh}]
            records = self._records(tx, r, shown)
        return ReconciledBatches(
            received=len(fresh), late=sum(b.late for b in fresh), counted_now=counted,
            released_now=sum(count for _, count in released), counted_conversions=int(totals[0]) if totals else 0,
            fee_fen=int(totals[1]) if totals else 0,
            exhausted_at=None if exhausted is None else datetime.fromisoformat(exhausted), records=records)

    def give_back(self, r: GiveBack) -> GivenBack:
        with self.db.transaction() as tx:
            rows = tx.fetchall(_WITH_GRANT + " AND a.granted_count > 0 AND a.released = 0 ORDER BY b.seq",
                               (r.task_id, r.content_id))
            given = self.ledger.release_in(tx, r.task_id, [row[0] for row in rows]) if rows else []
        return GivenBack(released_fen=sum(g.released_fen for g in given), batches=len(given))

    @staticmethod
    def _record(tx: Tx, r: ReconcileBatches) -> list[IncomingBatch]:
        """Inserts the batches new to the piece; returns them (and those this call recorded on an earlier try)."""
        fresh: list[IncomingBatch] = []
        for i, b in enumerate(r.batches):
            seq, key = r.first_seq + i, (r.task_id, r.content_id, b.event_id)
            row = tx.fetchone(f"SELECT seq, count FROM content_batches WHERE {_KEY}", key)
            values = (seq, b.count, b.occurred_at.isoformat(), int(b.cheating), int(b.late))
            if row is None:
                tx.execute("INSERT INTO content_batches (seq, count, occurred_at, cheating, late, task_id,"
                           " content_id, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*values, *key))
            elif row[1] is None:  # voided before it arrived: recorded, and stays void
                tx.execute("UPDATE content_batches SET seq = ?, count = ?, occurred_at = ?, cheating = ?, late = ?"
                           f" WHERE {_KEY}", (*values, *key))
            elif int(row[0]) != seq:
                continue  # seen before: counts once
            fresh.append(b)
        return fresh

    @staticmethod
    def _void(tx: Tx, r: ReconcileBatches) -> list[str]:
        for event_id in r.voids:
            key = (r.task_id, r.content_id, event_id)
            if not tx.execute(f"UPDATE content_batches SET voided = 1 WHERE {_KEY}", key):
                tx.execute("INSERT INTO content_batches (task_id, content_id, event_id, voided) VALUES (?, ?, ?, 1)",
                           key)
        return list(r.voids)

    def _judge(self, tx: Tx, r: ReconcileBatches, fresh: Sequence[IncomingBatch],
               voided: Sequence[str]) -> tuple[list[tuple[str, int]], list[Any], bool]:
        """Gives back the grants that no longer count, then accrues what counts and has no grant yet, in the
        order the batches arrived (R-3: the budget grants in the order it is asked)."""
        if r.rejudge:
            rows = tx.fetchall(_WITH_GRANT + " AND b.seq IS NOT NULL ORDER BY b.seq", (r.task_id, r.content_id))
        else:
            ids = [b.event_id for b in fresh] + list(voided)
            rows = [row for eid in ids for row in tx.fetchall(_WITH_GRANT + " AND b.event_id = ?",
                                                              (r.task_id, r.content_id, eid))]
        give_back, accrue, asked_before = [], [], False
        mine = {b.event_id for b in fresh}
        for eid, count, occurred_at, cheating, late, void, granted, _fen, released in rows:
            if count is None:
                continue
            at = datetime.fromisoformat(occurred_at)
            if granted is not None:
                asked_before = asked_before or eid in mine
                if int(granted) > 0 and not released and (
                        void or not batch_counts(r.rule, at, bool(cheating), for_release=True)):
                    give_back.append((eid, int(granted)))
            elif not late and not void and batch_counts(r.rule, at, bool(cheating)):
                accrue.append(AccrualItem(event_id=eid, count=int(count), price_fen=r.price_fen, occurred_at=at))
        if give_back:
            self.ledger.release_in(tx, r.task_id, [eid for eid, _ in give_back])
        accrued = self.ledger.accrue_in(tx, r.task_id, r.content_id, accrue) if accrue else []
        return give_back, accrued, bool(accrue) or asked_before

    @staticmethod
    def _records(tx: Tx, r: ReconcileBatches, event_ids: Sequence[str]) -> dict[str, BatchRecord]:
        records: dict[str, BatchRecord] = {}
        for eid in event_ids:
            row = tx.fetchone(_WITH_GRANT + " AND b.event_id = ?", (r.task_id, r.content_id, eid))
            if row is None or row[1] is None:
                continue
            counted = int(row[6] or 0) if not row[8] else 0
            records[eid] = BatchRecord(count=int(row[1]), occurred_at=datetime.fromisoformat(row[2]),
                                       cheating=bool(row[3]), late=bool(row[4]), voided=bool(row[5]),
                                       counted=counted, fee_fen=int(row[7] or 0) if counted else 0)
        return records


class ContentBatchActivities:
    def __init__(self, batches: ContentBatches) -> None:
        self.batches = batches

    @activity.defn(name=RECONCILE.name)
    def reconcile(self, request: ReconcileBatches) -> ReconciledBatches:
        with as_refusals():
            return self.batches.reconcile(request)

    @activity.defn(name=GIVE_BACK.name)
    def give_back(self, request: GiveBack) -> GivenBack:
        with as_refusals():
            return self.batches.give_back(request)

    def all(self) -> list[Any]:
        return [self.reconcile, self.give_back]
