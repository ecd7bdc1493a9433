"""Notices to account holders (PR-1 replies, PR-7 incident notices), idempotent per business key.

A notice is written once per key to `notification_outbox` (the SMS/e-mail gateway delivers from there); sending the
same key again moves nothing and answers as the first time. The contact is looked up in the personal-data vault by
token inside this activity, so no phone number or address ever enters a workflow (PR-6). An account with no contact
left on file is answered `undeliverable` and nothing is recorded, so a later attempt can still reach it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.db import Database
from activities.personal_data import PersonalData
from ports import notifications as port
from ports.notifications import (
    IncidentNoticesRequest,
    IncidentNoticesResult,
    NoticeRequest,
    NoticeResult,
    Status,
)

DDL = """
CREATE TABLE IF NOT EXISTS notification_outbox (
    key TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    contact_token TEXT NOT NULL,
    body_json TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

class Notifications:
    def __init__(self, db: Database, vault: PersonalData) -> None:
        self.db, self.vault = db, vault
        db.ensure_schema(DDL, DDL)

    def send(self, key: str, account_id: str, kind: str, body: dict[str, Any],
             contact_token: str | None = None) -> Status:
        with self.db.transaction() as tx:
            if tx.fetchone("SELECT 1 FROM notification_outbox WHERE key = ?", (key,)) is not None:
                return "duplicate"
        contact = contact_token or self.vault.contact_token(account_id)
        if contact is None or self.vault.reveal(contact) is None:
            return "undeliverable"
        with self.db.transaction() as tx:
            inserted = tx.execute(
                "INSERT INTO notification_outbox (key, account_id, kind, contact_token, body_json, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (key, account_id, kind, contact, json.dumps(body, ensure_ascii=False, sort_keys=True),
                 datetime.now(UTC).isoformat()))
        return "sent" if inserted else "duplicate"

    def sent(self, key_prefix: str = "") -> list[dict[str, Any]]:
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT key, account_id, kind, contact_token, body_json FROM notification_outbox"
                               " WHERE substr(key, 1, ?) = ? ORDER BY key", (len(key_prefix), key_prefix))
        return [{"key": r[0], "account_id": r[1], "kind": r[2], "contact_token": r[3], "body": json.loads(r[4])}
                for r in rows]


def incident_notice_key(incident_id: str, account_id: str) -> str:
    return f"incident:{incident_id}:{account_id}"


class NotificationActivities:
    def __init__(self, notifications: Notifications) -> None:
        self.notifications = notifications

    @activity.defn(name=port.SEND.name)
    def send(self, request: NoticeRequest) -> NoticeResult:
        status = self.notifications.send(request.key, request.account_id, request.kind, request.body,
                                         request.contact_token)
        return NoticeResult(key=request.key, status=status)

    @activity.defn(name=port.SEND_INCIDENT_NOTICES.name)
    def send_incident_notices(self, request: IncidentNoticesRequest) -> IncidentNoticesResult:
        notified: list[str] = []
        undeliverable: list[str] = []
        for account_id in request.account_ids:
            status = self.notifications.send(incident_notice_key(request.incident_id, account_id), account_id,
                                             "security_incident", request.body)
            (undeliverable if status == "undeliverable" else notified).append(account_id)
            activity.heartbeat(len(notified) + len(undeliverable))
        return IncidentNoticesResult(notified=notified, undeliverable=undeliverable)

    def all(self) -> list[Callable[..., Any]]:
        return [self.send, self.send_incident_notices]
