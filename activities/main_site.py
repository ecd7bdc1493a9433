"""The main sites (short-video and news apps): taking a component down from a piece of content.

The real adapter calls the main site's API; this one records each take-down in the project's database, which is
what an operator (and the tests) read. Idempotent: taking down a piece twice records the first take-down only.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import activity

from activities.db import Database
from ports import main_site as port
from ports.main_site import REFUSED_MOUNT, UnmountRequest, UnmountResult

__all__ = ["DDL", "REFUSED_MOUNT", "MainSite", "MainSiteActivities", "UnmountRequest", "UnmountResult"]

DDL = """
CREATE TABLE IF NOT EXISTS main_site_unmounts (
    task_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    unmounted_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (task_id, content_id)
);
"""


class MainSite:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(DDL, DDL)

    def unmount(self, request: UnmountRequest) -> UnmountResult:
        with self.db.transaction() as tx:
            row = tx.fetchone(
                "SELECT unmounted_at, reason FROM main_site_unmounts WHERE task_id = ? AND content_id = ?",
                [request.task_id, request.content_id],
            )
            if row is not None and not (row[1].startswith(REFUSED_MOUNT) and not request.reason.startswith(
                    REFUSED_MOUNT)):
                return UnmountResult(
                    unmounted_at=datetime.fromisoformat(row[0]), reason=row[1], already_unmounted=True
                )
            if row is not None:
                # The content was taken down when a report of it was refused (AM-6), then mounted again by an
                # accepted report: this is that mount's own take-down.
                tx.execute("DELETE FROM main_site_unmounts WHERE task_id = ? AND content_id = ?",
                           [request.task_id, request.content_id])
            tx.execute(
                "INSERT INTO main_site_unmounts (task_id, content_id, unmounted_at, reason) VALUES (?, ?, ?, ?)",
                [request.task_id, request.content_id, request.unmounted_at.isoformat(), request.reason],
            )
        return UnmountResult(unmounted_at=request.unmounted_at, reason=request.reason, already_unmounted=False)

    def unmounted(self, task_id: str) -> dict[str, str]:
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT content_id, reason FROM main_site_unmounts WHERE task_id = ?", [task_id])
        return {r[0]: r[1] for r in rows}


class MainSiteActivities:
    def __init__(self, main_site: MainSite) -> None:
        self.main_site = main_site

    @activity.defn(name=port.UNMOUNT.name)
    def unmount(self, request: UnmountRequest) -> UnmountResult:
        return self.main_site.unmount(request)
