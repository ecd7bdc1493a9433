"""Every piece of content a creator has had mounted, in any task (R-12): what a freeze of the creator's in-flight
tasks reaches. Written by the activity that starts a piece's workflow, before it starts it; read in pages by the
violation case's bounded fan-out (activities/penalties.py `penalties.signal_pieces`). The time-skipping test server
has no visibility store, and a table in the ledger's database answers the same question in one indexed read."""

from __future__ import annotations

from activities.db import Database

DDL = """
CREATE TABLE IF NOT EXISTS creator_pieces (
    workflow_id TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    content_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS creator_pieces_by_creator ON creator_pieces (creator_id, workflow_id);
"""


class CreatorPieces:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(DDL, DDL)

    def record(self, workflow_id: str, creator_id: str, task_id: str, content_id: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO creator_pieces (workflow_id, creator_id, task_id, content_id) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (workflow_id) DO NOTHING", [workflow_id, creator_id, task_id, content_id])

    def of(self, creator_id: str, after_workflow_id: str, limit: int) -> list[str]:
        """Workflow ids of the creator's pieces after `after_workflow_id`, in order (pages of a bounded fan-out)."""
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT workflow_id FROM creator_pieces WHERE creator_id = ? AND workflow_id > ?"
                               " ORDER BY workflow_id LIMIT ?", [creator_id, after_workflow_id, limit])
        return [str(r[0]) for r in rows]
