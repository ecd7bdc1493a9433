"""Whether one batch of a mounted piece counts (AM-9, AM-16, R-3, R-12), as a pure function of the piece's
counting interval and freezes: the piece's workflow asks it of the batches it holds, and the ledger's side
(activities/content_batches.py) asks it of the batches kept in the database, so both judge by one rule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from workflows.rules.billing import conversion_counts


class Freeze(Protocol):
    @property
    def frozen_at(self) -> datetime: ...
    @property
    def resumed_at(self) -> datetime | None: ...
    @property
    def withdrawn(self) -> bool: ...


class FreezeSpan(BaseModel):
    """R-12: conversions in [frozen_at, resumed_at) do not count unless the freeze was withdrawn (AM-22)."""

    frozen_at: datetime
    resumed_at: datetime | None = None
    withdrawn: bool = False


class CountingRule(BaseModel):
    """What decides, for one piece, whether a batch counts now."""

    mounted_at: datetime
    counting_stops_at: datetime
    budget_exhausted_at: datetime | None = None
    disposed: bool = False  # AM-16: disposed of for the creator's own violation: nothing counts
    freezes: list[FreezeSpan] = []


def frozen(occurred_at: datetime, freezes: Sequence[Freeze], *, standing_too: bool) -> bool:
    """Whether a conversion at `occurred_at` falls in a freeze that excludes it: one that ended without being
    withdrawn, or (`standing_too`) one still standing."""
    for freeze in freezes:
        if freeze.withdrawn or occurred_at < freeze.frozen_at:
            continue
        if freeze.resumed_at is None:
            if standing_too:
                return True
        elif occurred_at < freeze.resumed_at:
            return True
    return False


def batch_counts(rule: CountingRule, occurred_at: datetime, cheating: bool, *, for_release: bool = False,
                 freezes: Sequence[Freeze] | None = None) -> bool:
    """`for_release`: whether an accrued batch keeps its grant; one in a freeze still standing does (the budget is
    kept for it while the freeze stands), one not accrued yet waits. `freezes`: the rule's own unless given."""
    return not rule.disposed and conversion_counts(
        occurred_at, rule.mounted_at, rule.counting_stops_at, cheating, rule.budget_exhausted_at,
    ) and not frozen(occurred_at, rule.freezes if freezes is None else freezes, standing_too=not for_release)
