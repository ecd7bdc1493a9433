"""Shared vocabulary of the public contract: money, instants, ids, names.

Other services (in any language) send and receive these as JSON. Field names are snake_case, amounts are integer
fen ending in `_fen`, instants are ISO-8601 with an offset ending in `_at`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

DEFAULT_TASK_QUEUE = "xingtu"
DEFAULT_NAMESPACE = "default"

# Money: integer fen. `strict` refuses floats, numeric strings and booleans.
Fen = Annotated[int, Field(strict=True, ge=0, le=10**15)]
PositiveFen = Annotated[int, Field(strict=True, gt=0, le=10**15)]
Count = Annotated[int, Field(strict=True, ge=0, le=10**12)]
# Instants must carry an offset: a naive datetime is refused.
Instant = AwareDatetime
# Identifiers: printable, no colon (ids are joined with ':' into workflow ids), bounded.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
Text = Annotated[str, StringConstraints(max_length=2000)]


class ContractModel(BaseModel):
    """Base of every message: unknown fields are refused so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class StateModel(BaseModel):
    """Base of query results and workflow state (tolerant to fields added later when read by old clients)."""

    model_config = ConfigDict(extra="ignore")
