"""When a mount task looks at the ledger for the closures of its pieces (AM-12, AM-13).

A piece settles when its publicity window closes (or later, when a dispute or a held settlement is decided) and
records its closure in the ledger with the settlement. Its task reads those closures from the ledger rather than
being sent a message by every piece: 10,000 pieces closing together kept the task from ever continuing as new
(docs/bench.md, "Limits found" 2b). This module decides when to look. Plain code over the task's state, no I/O:
the task keeps one instance per run and asks it after every look.

- Nothing closes before its window: while every open piece's window is ahead, the next look is LOOK_AFTER past the
  next window's close (its piece settles at that instant).
- A look that found closures is followed by another LOOK_AFTER later: more are usually on their way.
- A piece whose window has closed and that is still open waits for its settlement or for an operator: the looks
  back off, doubling up to LOOK_AT_LEAST_EVERY, and never pass the next window's close.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta

from temporalio import workflow

# Passed through like every contract import of the workflows: imported here in a sandbox that does not pass
# `workflows` through (Replayer's default runner), the contract would be loaded a second time, and that copy would
# replace the module the mount task's mixins name (`from workflows.contract import mount_task`), whose models then
# fail pydantic's checks against the ports' (tests/test_metrics.py replays so).
with workflow.unsafe.imports_passed_through():
    from workflows.contract.mount_task import MountTaskState, PieceEntry, Published
    from workflows.rules.billing import billing_period_end, publicity_window_closes_at

LOOK_AFTER = timedelta(seconds=2)
LOOK_AT_LEAST_EVERY = timedelta(hours=1)
CLOSED = ("settled", "closed")


class ClosureLooks:
    def __init__(self, s: MountTaskState, published: Published) -> None:
        """The open pieces' windows as the task knows them: each billing period cut at the task's end (AM-7, AM-8),
        or at the end of the period while it is open."""
        self.s, self.published = s, published
        self.closes: list[tuple[datetime, str]] = sorted(
            (self.window_closes_at(p), p.content_id) for p in s.pieces.values() if p.status not in CLOSED)
        self.first_open = 0
        self.pause = LOOK_AFTER

    def window_closes_at(self, piece: PieceEntry) -> datetime:
        cut_at = self.s.ended_at or self.published.period_end_at
        return publicity_window_closes_at(billing_period_end(piece.mounted_at, cut_at))

    def add(self, piece: PieceEntry) -> datetime:
        """A new mount; returns when its window closes."""
        entry = (self.window_closes_at(piece), piece.content_id)
        index = bisect.bisect_left(self.closes, entry)
        self.closes.insert(index, entry)
        self.first_open = min(self.first_open, index)
        return entry[0]

    def next_look(self, now: datetime, found: int) -> datetime | None:
        """After a look at `now` that read `found` closures: when to look next (None: no piece is open)."""
        if self.s.pieces_open <= 0:
            return None
        first = self._skip_closed()
        overdue = first < len(self.closes) and self.closes[first][0] <= now
        upcoming = self.next_window(now)
        if not found and not overdue:
            self.pause = LOOK_AFTER
            return (upcoming or now) + LOOK_AFTER
        self.pause = LOOK_AFTER if found else min(self.pause * 2, LOOK_AT_LEAST_EVERY)
        look_at = now + self.pause
        return look_at if upcoming is None else min(look_at, upcoming + LOOK_AFTER)

    def next_window(self, now: datetime) -> datetime | None:
        """When the next window of an open piece closes after `now`."""
        return self._next_open(self._skip_closed(), after=now)

    def _skip_closed(self) -> int:
        while self.first_open < len(self.closes) and self._closed(self.first_open):
            self.first_open += 1
        return self.first_open

    def _next_open(self, start: int, after: datetime | None) -> datetime | None:
        index = start if after is None else max(start, bisect.bisect_right(self.closes, (after, "\U0010ffff")))
        while index < len(self.closes) and self._closed(index):
            index += 1
        return self.closes[index][0] if index < len(self.closes) else None

    def _closed(self, index: int) -> bool:
        return self.s.pieces[self.closes[index][1]].status in CLOSED
