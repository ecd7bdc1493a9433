"""R-2: conversion batches reported after their piece settled, kept where an operator can read them.

A settled piece's workflow has completed, so a batch signalled to it is refused by Temporal ("not found"); the
caller (starter.client.report_conversions) finds the piece settled and records the batch here, in the ledger's
database: it changes no money, and an operator reads it with `python -m starter late TASK_ID`. Idempotent: the same
batch (task, content, event id) reported again is recorded once.
"""

from __future__ import annotations

from datetime import datetime

from activities.db import Database
from workflows.contract.mounted_content import LateBatch

DDL = """
CREATE TABLE IF NOT EXISTS late_conversions (
    task_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    count INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    cheating INTEGER NOT NULL,
    settled_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (task_id, content_id, event_id)
);
"""


class LateReports:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(DDL, DDL)

    def record(self, late: LateBatch, recorded_at: datetime) -> bool:
        """Records the batch once; False when it was recorded before (the first record stands)."""
        with self.db.transaction() as tx:
            return tx.execute(
                "INSERT INTO late_conversions (task_id, content_id, event_id, count, occurred_at, cheating, "
                "settled_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (task_id, content_id, event_id) DO NOTHING",
                [late.task_id, late.content_id, late.event_id, late.count, late.occurred_at.isoformat(),
                 int(late.cheating), late.settled_at.isoformat(), recorded_at.isoformat()],
            ) == 1

    def of_task(self, task_id: str) -> list[dict[str, object]]:
        with self.db.transaction() as tx:
            rows = tx.fetchall(
                "SELECT content_id, event_id, count, occurred_at, cheating, settled_at, recorded_at "
                "FROM late_conversions WHERE task_id = ? ORDER BY recorded_at, content_id, event_id", [task_id])
        return [{"content_id": r[0], "event_id": r[1], "count": r[2], "occurred_at": r[3],
                 "cheating": bool(r[4]), "settled_at": r[5], "recorded_at": r[6]} for r in rows]
