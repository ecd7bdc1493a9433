"""Notices to account holders (PR-1 replies, PR-7 incident notices) as the workflows see them: idempotent per
business key; the contact is a vault token (PR-6), never a phone number or an address."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ports.port import ActivityPort
from workflows.contract.privacy import VaultToken

Status = Literal["sent", "duplicate", "undeliverable"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoticeRequest(_Model):
    key: str = Field(min_length=1)
    account_id: str
    kind: str
    body: dict[str, str]
    contact_token: VaultToken | None = None


class NoticeResult(_Model):
    key: str
    status: Status


class IncidentNoticesRequest(_Model):
    incident_id: str
    account_ids: list[str] = Field(min_length=1, max_length=500)
    body: dict[str, str]


class IncidentNoticesResult(_Model):
    notified: list[str]  # sent now or before (a repeat is not sent twice)
    undeliverable: list[str]


SEND = ActivityPort[NoticeRequest, NoticeResult]("notifications.send", NoticeResult)
SEND_INCIDENT_NOTICES = ActivityPort[IncidentNoticesRequest, IncidentNoticesResult](
    "notifications.send_incident_notices", IncidentNoticesResult)
