"""What a claim after a Xingguang task closed is judged by (XG-10, R-14), as the late-claims workflow asks for it:
the closed task's compliance pauses and, from the ledger, the order amount, the client and the compensation paid."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ports.port import ActivityPort

CLAIM_REFUSED = "CompensationRefused"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimsBasisRequest(_Model):
    task_id: str = Field(min_length=1)


class PauseSpanModel(_Model):
    pause_id: str
    paused_at: datetime
    ended_at: datetime | None


class PaidClaim(_Model):
    compensation_id: str
    kind: str  # delivery_anomaly / damages (the memo's first word, as the workflows write it)
    amount_fen: int
    paid_at: datetime


class ClaimsBasis(_Model):
    task_running: bool
    client_id: str = ""
    order_amount_fen: int = 0
    pauses: list[PauseSpanModel] = Field(default_factory=list)
    paid: list[PaidClaim] = Field(default_factory=list)


BASIS = ActivityPort[ClaimsBasisRequest, ClaimsBasis]("xg_claims.basis", ClaimsBasis)
