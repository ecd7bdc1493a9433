"""Shared vocabulary of the public contract: money, instants, ids, names.

Other services (in any language) send and receive these as JSON. Field names are snake_case, amounts are integer
fen ending in `_fen`, instants are ISO-8601 with an offset ending in `_at`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, TypeVar, cast

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

DEFAULT_TASK_QUEUE = "xingtu"
DEFAULT_NAMESPACE = "default"

# Money: integer fen. `strict` refuses floats, numeric strings and booleans.
Fen = Annotated[int, Field(strict=True, ge=0, le=10**15)]
PositiveFen = Annotated[int, Field(strict=True, gt=0, le=10**15)]
Count = Annotated[int, Field(strict=True, ge=0, le=10**12)]
# Instants must carry an offset: a naive datetime is refused. And they must lie in a span where the workflows'
# arithmetic (business time, windows of days to years) stays within Python's years 1..9999: an instant such as
# 9999-12-31T23:59:59-12:00 is valid ISO-8601, but in UTC+08:00 it is past year 9999 (OverflowError: a signal carrying
# it failed the workflow task on every retry).
EARLIEST_INSTANT, LATEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def _within_span(value: datetime) -> datetime:
    try:
        inside = EARLIEST_INSTANT <= value.astimezone(UTC) < LATEST_INSTANT
    except OverflowError:
        inside = False
    if not inside:
        raise ValueError(f"an instant from {EARLIEST_INSTANT:%Y-%m-%d} to {LATEST_INSTANT:%Y-%m-%d} (UTC) is required")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_within_span)]
# Identifiers: printable, no colon (ids are joined with ':' into workflow ids), bounded.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
Text = Annotated[str, StringConstraints(max_length=2000)]


class ContractModel(BaseModel):
    """Base of every message: unknown fields are refused so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class StateModel(BaseModel):
    """Base of query results and workflow state (tolerant to fields added later when read by old clients)."""

    model_config = ConfigDict(extra="ignore")


View = TypeVar("View", bound=StateModel)


def public_view(view: type[View], state: StateModel) -> View:
    """The `state` query's answer: the view's fields of the carried state. A workflow's carried state extends its
    published view with what it keeps for itself (counters, bookkeeping), which therefore never reaches a caller
    and may change without a contract change."""
    return cast(View, view.model_construct(**{name: getattr(state, name) for name in view.model_fields}))
