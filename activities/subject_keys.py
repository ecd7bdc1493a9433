"""One data key per data subject, wrapped by the payload key ring: crypto-shredding (PR-2, PR-5, PR-6).

Each account (the data subject) gets a random AES-256 key of its own, stored in `pd_subject_keys` wrapped
(AES-GCM) by the current key of the payload key ring (starter/codec.py: PAYLOAD_KEYS or .data/payload-keys). Its
vault values and exports (activities/personal_data_store.py) and the personal values of its payloads in workflow
histories (the codec's `json/sealed` payloads) are encrypted with it, its key id beside each ciphertext. Erasing
(PR-2, PR-5) destroys the key: the wrapped key is overwritten with NULL, so every copy of that subject's data
encrypted under it (vault rows, history payloads, exports, and the backups of any of them) is unreadable for good;
the codec then answers "erased". Values still to keep (fields a hold retains, fields the request did not name, the
anonymized name) are re-encrypted under a new key of the subject first, in the same transaction.

Where the destroyed key's bytes go: the database holds the key wrapped, so a copy of the file or a backup exposes
nothing without the ring key, which lives outside the database. In SQLite the connection runs with
`secure_delete` (activities/db.py), which overwrites freed row space with zeros, and after a destruction the
write-ahead log is checkpointed and truncated, so the wrapped key is gone from the file's bytes as well. PostgreSQL
keeps dead row versions until VACUUM, and its WAL and base backups keep the wrapped key: there, and for backups
taken before the erasure anywhere, the erasure is complete once the ring key that wrapped it is retired. Rotation
(`rewrap`, `python -m starter.privacy rewrap`) re-wraps every live subject key under the ring's current key and
touches no data, so the old ring key can then be dropped for the vault (histories keep needing it only for the
payloads encrypted with it directly: those without a subject, and those written before subject keys).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from activities.db import Database, Tx
from starter.codec import (
    KEY_BYTES,
    NONCE_BYTES,
    KeyRing,
    PayloadKeyError,
    SubjectKeyErased,
    open_text,
    seal_text,
)

__all__ = ["SubjectKeys", "open_text", "seal_text"]

DDL = """
CREATE TABLE IF NOT EXISTS pd_subject_keys (
    key_id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    wrapped_key TEXT,
    wrapped_by TEXT,
    created_at TEXT NOT NULL,
    destroyed_at TEXT,
    destroyed_by TEXT,
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS pd_subject_keys_live ON pd_subject_keys (subject_id) WHERE destroyed_at IS NULL;
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SubjectKeys:
    """The subject key store on one database. The codec uses `key_for_subject` / `key_by_id` (own transactions);
    the vault uses the `tx` forms inside its transactions."""

    def __init__(self, db: Database, ring: KeyRing) -> None:
        self.db, self.ring = db, ring
        db.ensure_schema(DDL, DDL)

    # ---- for the codec -------------------------------------------------------------------------------------------
    def key_for_subject(self, subject_id: str) -> tuple[str, bytes]:
        with self.db.transaction() as tx:
            return self.current(tx, subject_id)

    def key_by_id(self, key_id: str) -> bytes:
        with self.db.transaction() as tx:
            return self.by_id(tx, key_id)

    # ---- inside a transaction ------------------------------------------------------------------------------------
    def current(self, tx: Tx, subject_id: str) -> tuple[str, bytes]:
        """The subject's live key, made on first use."""
        row = tx.fetchone("SELECT key_id, wrapped_key, wrapped_by FROM pd_subject_keys WHERE subject_id = ? AND"
                          " destroyed_at IS NULL", (subject_id,), for_update=True)
        if row is not None:
            return str(row[0]), self._unwrap(str(row[0]), subject_id, str(row[1]), str(row[2]))
        ring_id = self.ring.current
        if ring_id is None:
            raise PayloadKeyError("personal data cannot be stored or sent without a payload key to wrap the "
                                  "subject's key: set PAYLOAD_KEYS (README: Personal data)")
        key_id, key = f"sk-{secrets.token_hex(12)}", secrets.token_bytes(KEY_BYTES)
        tx.execute("INSERT INTO pd_subject_keys (key_id, subject_id, wrapped_key, wrapped_by, created_at)"
                   " VALUES (?, ?, ?, ?, ?)", (key_id, subject_id, self._wrap(key_id, subject_id, key), ring_id,
                                                _now()))
        return key_id, key

    def by_id(self, tx: Tx, key_id: str) -> bytes:
        row = tx.fetchone("SELECT subject_id, wrapped_key, wrapped_by FROM pd_subject_keys WHERE key_id = ?",
                          (key_id,))
        if row is None:
            raise PayloadKeyError(f"subject key {key_id!r} is not in this database ({self.db.dialect}): does "
                                  "LEDGER_DSN point at the database the data was written with?")
        if row[1] is None:
            raise SubjectKeyErased(key_id)
        return self._unwrap(key_id, str(row[0]), str(row[1]), str(row[2]))

    def destroy(self, tx: Tx, subject_id: str, by: str) -> list[str]:
        """Destroys the subject's live key; returns its id (none when it had none)."""
        rows = tx.fetchall("SELECT key_id FROM pd_subject_keys WHERE subject_id = ? AND destroyed_at IS NULL",
                           (subject_id,), for_update=True)
        tx.execute("UPDATE pd_subject_keys SET wrapped_key = NULL, wrapped_by = NULL, destroyed_at = ?,"
                   " destroyed_by = ? WHERE subject_id = ? AND destroyed_at IS NULL", (_now(), by, subject_id))
        return [str(r[0]) for r in rows]

    def rewrap(self) -> int:
        """Key-ring rotation: every live subject key wrapped again under the ring's current key; no data touched."""
        ring_id = self.ring.current
        if ring_id is None:
            raise PayloadKeyError("no payload key to re-wrap under: set PAYLOAD_KEYS")
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT key_id, subject_id, wrapped_key, wrapped_by FROM pd_subject_keys WHERE"
                               " destroyed_at IS NULL AND wrapped_by <> ?", (ring_id,), for_update=True)
            for key_id, subject_id, wrapped, wrapped_by in rows:
                key = self._unwrap(key_id, subject_id, wrapped, wrapped_by)
                tx.execute("UPDATE pd_subject_keys SET wrapped_key = ?, wrapped_by = ? WHERE key_id = ?",
                           (self._wrap(key_id, subject_id, key), ring_id, key_id))
        self.db.checkpoint()  # the old wrappings leave the file's bytes too
        return len(rows)

    # ---- wrapping ------------------------------------------------------------------------------------------------
    def _wrap(self, key_id: str, subject_id: str, key: bytes) -> str:
        ring_id = self.ring.current
        assert ring_id is not None
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.ring.keys[ring_id]).encrypt(nonce, key, f"{key_id}|{subject_id}".encode())
        return base64.b64encode(nonce + sealed).decode()

    def _unwrap(self, key_id: str, subject_id: str, wrapped: str, wrapped_by: str) -> bytes:
        ring_key = self.ring.keys.get(wrapped_by)
        if ring_key is None:
            raise PayloadKeyError(f"subject key {key_id!r} is wrapped by payload key {wrapped_by!r}, which is not "
                                  f"among the keys of this process ({', '.join(self.ring.keys) or 'none'}): add it "
                                  "to PAYLOAD_KEYS, or run `python -m starter.privacy rewrap` where it is")
        data = base64.b64decode(wrapped)
        try:
            return AESGCM(ring_key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], f"{key_id}|{subject_id}".encode())
        except InvalidTag:
            raise PayloadKeyError(f"subject key {key_id!r} failed authentication under payload key "
                                  f"{wrapped_by!r}") from None
