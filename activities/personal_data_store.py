"""The personal-data vault: its tables, erasure and export (PR-1, PR-2, PR-5, PR-6). Activities: personal_data.py.

PR-6: names, phone numbers, ID numbers and contact details live only here, in `pd_vault`, in the ledger's
database. Services put a value in (`PersonalData.put`, outside Temporal) and pass the random token it returns;
workflows hold tokens, account ids and counts, and their histories show nothing else in clear. Only the export
file an operator hands over, the notification outbox's gateway and an operator's `reveal` see plain values.

Codec and vault, both (PR-6): Temporal histories are immutable and retained, so a value written in one can never
be deleted (PR-2), only made unreadable by destroying its key, which would take every other payload under that key
with it. So workflows hold tokens, and erasure really removes the value here while histories keep a dead token;
that also keeps personal data out of search attributes, memos and summaries by construction. What must reach a
workflow in clear before the vault has it (a request's intake: name, phone, ID number given as evidence, new
values) travels in a payload encrypted by the payload codec (starter/codec.py), and the first activity stages it
here (`stage`). An operator reads a value behind a token with `python -m starter.privacy reveal TOKEN`, and an
encrypted payload in the UI through the codec server (`python -m starter codec-server`).

Encrypted at rest, erasable everywhere (activities/subject_keys.py): every value and export document is sealed
(AES-256-GCM) with its account's own subject key, whose id is in `key_id` (NULL only for a value written before
subject keys: sealed when the vault next opens). Erasure destroys the subject's key after re-sealing what is kept
under a new one, so every other copy (staged values, exports, the intake in histories, backups) is unreadable.

Tables (all `pd_*`, separate from the directory's and the ledger's):
  pd_vault      one value per token: the account's profile fields, and values staged by requests
  pd_subject_keys  each account's data keys, wrapped by the payload key ring (activities/subject_keys.py)
  pd_holds      needs that keep fields from erasure (open dispute, unsettled settlement, legal retention)
  pd_erasures   what each erasure request did to each field (deleted, anonymized, retained by which holds)
  pd_exports    the export document of each access/copy/portability request
  pd_archive    directory rows taken out of the active directory at cancellation (PR-5), kept as records
  pd_consents   consent withdrawals
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from activities.db import Database, Tx
from activities.directory import Directory
from activities.ledger import Ledger
from activities.personal_data_export import VaultExports
from activities.subject_keys import SubjectKeys, open_text, seal_text
from ports.personal_data import FieldOutcome
from starter.codec import SubjectKeyErased
from workflows.rules.privacy import Disposition, Hold, HoldReason, PersonalField, erasure_plan

DDL = """
CREATE TABLE IF NOT EXISTS pd_vault (
    token TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    field TEXT NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('profile', 'staged')),
    value TEXT,
    key_id TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted', 'anonymized', 'consumed')),
    erase_request TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pd_vault_by_account ON pd_vault (account_id, purpose, field);
CREATE TABLE IF NOT EXISTS pd_holds (
    hold_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    released_at TEXT
);
CREATE TABLE IF NOT EXISTS pd_erasures (
    request_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    field TEXT NOT NULL,
    disposition TEXT NOT NULL,
    held_by TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (request_id, field)
);
CREATE TABLE IF NOT EXISTS pd_exports (
    request_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    document TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    key_id TEXT
);
CREATE TABLE IF NOT EXISTS pd_archive (
    account_id TEXT NOT NULL,
    source TEXT NOT NULL,
    row_json TEXT NOT NULL,
    archived_at TEXT NOT NULL,
    PRIMARY KEY (account_id, source)
);
CREATE TABLE IF NOT EXISTS pd_consents (
    account_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    withdrawn_at TEXT NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (account_id, purpose)
);
"""

ANONYMIZED = "[anonymized]"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_token() -> str:
    return f"pdt_{secrets.token_hex(16)}"


def export_dir_for(db: Database) -> Path:
    """Export files go beside a SQLite ledger file (a test's tmp dir), else under .data/exports."""
    if db.dialect == "sqlite" and db.dsn != ":memory:":
        return Path(db.dsn.removeprefix("sqlite:///")).resolve().parent / "exports"
    return Path(".data/exports").resolve()


class PersonalData(VaultExports):
    def __init__(self, db: Database, ledger: Ledger, directory: Directory, keys: SubjectKeys,
                 export_dir: Path | None = None) -> None:
        self.db, self.ledger, self.directory, self.keys = db, ledger, directory, keys
        self.export_dir = export_dir or export_dir_for(db)
        db.ensure_schema(DDL, DDL)
        self._add_key_columns()
        self.seal_legacy()

    # ---- encryption at rest ------------------------------------------------------------------------------------

    def _seal(self, tx: Tx, account_id: str, where: str, value: str) -> tuple[str, str]:
        """(ciphertext, key id) of a value under the account's live key; `where` (table|row) is bound to it."""
        key_id, key = self.keys.current(tx, account_id)
        return seal_text(key, value, f"{key_id}|{where}"), key_id

    def _open(self, tx: Tx, where: str, value: str | None, key_id: str | None) -> str | None:
        """The value in clear; None when there is none or its subject key was destroyed (erased)."""
        if value is None or key_id is None:
            return value  # key_id None: written before subject keys, sealed by seal_legacy
        try:
            key = self.keys.by_id(tx, key_id)
        except SubjectKeyErased:
            return None
        return open_text(key, value, f"{key_id}|{where}")

    def _add_key_columns(self) -> None:
        """Databases made before subject keys get the key_id columns (NULL: a value in clear, sealed below)."""
        with self.db.transaction() as tx:
            for table in ("pd_vault", "pd_exports"):
                if self.db.dialect == "postgresql":
                    tx.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS key_id TEXT")
                elif not tx.fetchone("SELECT 1 FROM pragma_table_info(?) WHERE name = 'key_id'", (table,)):
                    tx.execute(f"ALTER TABLE {table} ADD COLUMN key_id TEXT")

    def seal_legacy(self) -> int:
        """Seals the values and exports still in clear (written before subject keys). Needs the payload keys."""
        if self.keys.ring.current is None:
            return 0
        with self.db.transaction() as tx:
            values = tx.fetchall("SELECT token, account_id, value FROM pd_vault WHERE key_id IS NULL AND value IS"
                                 " NOT NULL")
            for token, account_id, value in values:
                tx.execute("UPDATE pd_vault SET value = ?, key_id = ? WHERE token = ?",
                           (*self._seal(tx, account_id, f"pd_vault|{token}", value), token))
            exports = tx.fetchall("SELECT request_id, account_id, document FROM pd_exports WHERE key_id IS NULL")
            for request_id, account_id, document in exports:
                tx.execute("UPDATE pd_exports SET document = ?, key_id = ? WHERE request_id = ?",
                           (*self._seal(tx, account_id, f"pd_exports|{request_id}", document), request_id))
        if values or exports:
            self.db.checkpoint()  # the clear values leave the write-ahead log too (secure_delete zeroed the rows)
        return len(values) + len(exports)

    # ---- the vault, for services and operators (outside Temporal) ---------------------------------------------

    def put(self, account_id: str, field: PersonalField, value: str, *, staged: bool = False) -> str:
        """Stores a value and returns its token. A profile field keeps its token when its value changes."""
        with self.db.transaction() as tx:
            if not staged:
                row = tx.fetchone("SELECT token FROM pd_vault WHERE account_id = ? AND field = ? AND purpose ="
                                  " 'profile' AND status = 'active'", (account_id, field.value))
                if row is not None:
                    tx.execute("UPDATE pd_vault SET value = ?, key_id = ?, updated_at = ? WHERE token = ?",
                               (*self._seal(tx, account_id, f"pd_vault|{row[0]}", value), now_iso(), row[0]))
                    return str(row[0])
            token = new_token()
            tx.execute("INSERT INTO pd_vault (token, account_id, field, purpose, value, key_id, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (token, account_id, field.value, "staged" if staged else "profile",
                        *self._seal(tx, account_id, f"pd_vault|{token}", value), now_iso()))
            return token

    def stage(self, account_id: str, staging_key: str,
              values: Sequence[tuple[str, PersonalField, str]]) -> list[str]:
        """Stages values a request brought in clear, one per slot, and returns their tokens. Repeat-safe: a slot's
        token derives from the workflow's random staging key and the slot (never from the value), so a retry finds
        the rows it wrote, also after a correction consumed them."""
        tokens: list[str] = []
        with self.db.transaction() as tx:
            for slot, field, value in values:
                token = f"pdt_{hashlib.sha256(f'{staging_key}:{slot}'.encode()).hexdigest()[:32]}"
                tx.execute("INSERT INTO pd_vault (token, account_id, field, purpose, value, key_id, updated_at)"
                           " VALUES (?, ?, ?, 'staged', ?, ?, ?) ON CONFLICT (token) DO NOTHING",
                           (token, account_id, field.value, *self._seal(tx, account_id, f"pd_vault|{token}", value),
                            now_iso()))
                tokens.append(token)
        return tokens

    def reveal(self, token: str) -> str | None:
        """The value behind a token; None when there is none: never stored, deleted, or its subject erased."""
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT value, key_id FROM pd_vault WHERE token = ?", (token,))
            return None if row is None else self._open(tx, f"pd_vault|{token}", row[0], row[1])

    def profile(self, account_id: str) -> dict[PersonalField, tuple[str, str | None, str]]:
        """field -> (token, value, status) of the account's profile."""
        with self.db.transaction() as tx:
            return self._profile(tx, account_id)

    def _profile(self, tx: Tx, account_id: str) -> dict[PersonalField, tuple[str, str | None, str]]:
        rows = tx.fetchall("SELECT field, token, value, key_id, status FROM pd_vault WHERE account_id = ? AND"
                           " purpose = 'profile' ORDER BY updated_at", (account_id,))
        return {PersonalField(r[0]): (r[1], self._open(tx, f"pd_vault|{r[1]}", r[2], r[3]), r[4]) for r in rows}

    def contact_token(self, account_id: str) -> str | None:
        """The account's phone (else email) on file, if any is still held."""
        profile = self.profile(account_id)
        for field in (PersonalField.PHONE, PersonalField.EMAIL):
            token, value, status = profile.get(field, ("", None, "deleted"))
            if value is not None and status == "active":
                return token
        return None

    # ---- PR-1: identity, correction, consent ------------------------------------------------------------------

    def check_identity(self, account_id: str, evidence_tokens: Sequence[str]) -> bool:
        """The requester gave a phone, e-mail or ID number equal to one on file for the account."""
        with self.db.transaction() as tx:
            # A name is not unique: only a phone, e-mail or ID number on file proves who asks.
            on_file = {value for field, (_, value, status) in self._profile(tx, account_id).items()
                       if value is not None and status == "active" and field is not PersonalField.NAME}
            rows = [(t, tx.fetchone("SELECT value, key_id FROM pd_vault WHERE token = ?", (t,)))
                    for t in evidence_tokens]
            given = [self._open(tx, f"pd_vault|{t}", row[0], row[1]) for t, row in rows if row is not None]
        return any(value is not None and value in on_file for value in given)

    def correct(self, account_id: str, request_id: str, changes: Sequence[tuple[PersonalField, str]]) -> list[str]:
        """Copies each staged value into the profile and drops the staged copy. Repeat-safe: a consumed token
        means that change is already applied."""
        applied: list[str] = []
        with self.db.transaction() as tx:
            for field, value_token in changes:
                staged = tx.fetchone("SELECT value, status, account_id, key_id FROM pd_vault WHERE token = ?",
                                     (value_token,))
                if staged is None or staged[2] != account_id:
                    raise ValueError(f"{field.value}: no staged value {value_token} for account {account_id}")
                if staged[1] == "consumed":
                    applied.append(field.value)
                    continue
                value = self._open(tx, f"pd_vault|{value_token}", staged[0], staged[3])
                if value is None:
                    raise ValueError(f"{field.value}: the staged value {value_token} was erased")
                current = tx.fetchone("SELECT token FROM pd_vault WHERE account_id = ? AND field = ? AND purpose ="
                                      " 'profile' AND status = 'active'", (account_id, field.value))
                if current is None:
                    token = new_token()
                    tx.execute("INSERT INTO pd_vault (token, account_id, field, purpose, value, key_id, updated_at)"
                               " VALUES (?, ?, ?, 'profile', ?, ?, ?)", (token, account_id, field.value, *self._seal(
                                   tx, account_id, f"pd_vault|{token}", value), now_iso()))
                else:
                    tx.execute("UPDATE pd_vault SET value = ?, key_id = ?, updated_at = ? WHERE token = ?",
                               (*self._seal(tx, account_id, f"pd_vault|{current[0]}", value), now_iso(),
                                current[0]))
                tx.execute("UPDATE pd_vault SET value = NULL, key_id = NULL, status = 'consumed', erase_request = ?,"
                           " updated_at = ? WHERE token = ?", (request_id, now_iso(), value_token))
                applied.append(field.value)
        return applied

    def withdraw_consent(self, account_id: str, purpose: str, request_id: str) -> str:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO pd_consents (account_id, purpose, withdrawn_at, request_id) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT DO NOTHING", (account_id, purpose, now_iso(), request_id))
            row = tx.fetchone("SELECT withdrawn_at FROM pd_consents WHERE account_id = ? AND purpose = ?",
                              (account_id, purpose))
        assert row is not None
        return str(row[0])

    # ---- PR-2: holds and erasure -------------------------------------------------------------------------------

    def hold(self, account_id: str, hold_id: str, reason: HoldReason) -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO pd_holds (hold_id, account_id, reason, placed_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT DO NOTHING", (hold_id, account_id, reason.value, now_iso()))

    def release_hold(self, hold_id: str) -> tuple[str | None, list[str]]:
        """Ends a hold; returns its account and the erasure requests still waiting on that account's data."""
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT account_id FROM pd_holds WHERE hold_id = ?", (hold_id,))
            if row is None:
                return None, []
            tx.execute("UPDATE pd_holds SET released_at = ? WHERE hold_id = ? AND released_at IS NULL",
                       (now_iso(), hold_id))
            waiting = tx.fetchall("SELECT DISTINCT erase_request FROM pd_vault WHERE account_id = ? AND purpose ="
                                  " 'profile' AND status = 'active' AND erase_request IS NOT NULL", (row[0],))
        return str(row[0]), sorted(str(r[0]) for r in waiting)

    def active_holds(self, tx: Tx, account_id: str) -> list[Hold]:
        rows = tx.fetchall("SELECT hold_id, reason FROM pd_holds WHERE account_id = ? AND released_at IS NULL"
                           " ORDER BY hold_id", (account_id,))
        return [Hold(str(r[0]), HoldReason(r[1])) for r in rows]

    def erase(self, account_id: str, request_id: str, fields: Sequence[PersonalField] = (),
              keep_tokens: Sequence[str] = ()) -> list[FieldOutcome]:
        """PR-2: deletes or anonymizes the account's personal data (all fields, or `fields`), except what an active
        hold needs: that is marked with the request and erased by a later call once the hold is released.
        Repeat-safe; returns the outcome of every field this request has touched so far.

        Whenever a field is deleted or anonymized, the account's subject key is destroyed (crypto-shredding, see
        `_shred`): every other copy of its values (staged, in exports, in histories, in backups) becomes
        unreadable, and what is kept is sealed again under a new key."""
        shredded: list[str] | None = None
        with self.db.transaction() as tx:
            profile = self._profile(tx, account_id)
            wanted = set(fields) or set(profile)
            live = {f for f in wanted if f in profile and profile[f][2] == "active"}
            erased: set[str] = set()
            for plan in erasure_plan(live, self.active_holds(tx, account_id)):
                token = profile[plan.field][0]
                if plan.disposition is not Disposition.RETAIN:
                    erased.add(plan.field.value)
                if plan.disposition is Disposition.DELETE:
                    tx.execute("UPDATE pd_vault SET value = NULL, key_id = NULL, status = 'deleted',"
                               " erase_request = ?, updated_at = ? WHERE token = ?", (request_id, now_iso(), token))
                elif plan.disposition is Disposition.ANONYMIZE:
                    tx.execute("UPDATE pd_vault SET value = ?, key_id = ?, status = 'anonymized', erase_request = ?,"
                               " updated_at = ? WHERE token = ?",
                               (*self._seal(tx, account_id, f"pd_vault|{token}", ANONYMIZED), request_id, now_iso(),
                                token))
                else:
                    tx.execute("UPDATE pd_vault SET erase_request = ?, updated_at = ? WHERE token = ?",
                               (request_id, now_iso(), token))
                tx.execute("INSERT INTO pd_erasures (request_id, account_id, field, disposition, held_by, updated_at)"
                           " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, field) DO UPDATE SET"
                           " disposition = excluded.disposition, held_by = excluded.held_by,"
                           " updated_at = excluded.updated_at",
                           (request_id, account_id, plan.field.value, plan.disposition.value,
                            ",".join(plan.held_by), now_iso()))
            if erased:
                shredded = self._shred(tx, account_id, request_id, erased, set(keep_tokens))
            rows = tx.fetchall("SELECT field, disposition, held_by FROM pd_erasures WHERE request_id = ?"
                               " ORDER BY field", (request_id,))
        if shredded is not None:
            self.db.checkpoint()  # the destroyed key leaves the write-ahead log as well (activities/subject_keys.py)
            for export_request in shredded:  # the hand-over files of earlier exports: copies of what is erased
                (self.export_dir / f"{export_request}.json").unlink(missing_ok=True)
        return [FieldOutcome(field=PersonalField(r[0]), disposition=Disposition(r[1]),
                             held_by=[h for h in str(r[2]).split(",") if h]) for r in rows]

    def _shred(self, tx: Tx, account_id: str, request_id: str, erased: set[str], keep_tokens: set[str]) -> list[str]:
        """Destroys the account's subject key. First the values to keep (profile fields not erased now, held ones,
        the anonymized name, staged values of other fields or in `keep_tokens`) are opened; staged copies of
        erased fields are dropped; then the key is destroyed and
        the kept values are sealed under a new key. Exports (copies of the whole profile) are left sealed under
        the destroyed key: unreadable. Returns the request ids of those exports."""
        keep: list[tuple[str, str]] = []
        for token, field, status, value, key_id in tx.fetchall(
                "SELECT token, field, status, value, key_id FROM pd_vault WHERE account_id = ? AND value IS NOT NULL",
                (account_id,)):
            plain = self._open(tx, f"pd_vault|{token}", value, key_id)
            if plain is not None and (status == "anonymized" or field not in erased or token in keep_tokens):
                keep.append((token, plain))
            else:
                tx.execute("UPDATE pd_vault SET value = NULL, key_id = NULL, status = 'deleted', erase_request = ?,"
                           " updated_at = ? WHERE token = ?", (request_id, now_iso(), token))
        self.keys.destroy(tx, account_id, f"erasure:{request_id}")
        for token, plain in keep:
            tx.execute("UPDATE pd_vault SET value = ?, key_id = ? WHERE token = ?",
                       (*self._seal(tx, account_id, f"pd_vault|{token}", plain), token))
        return [str(r[0]) for r in tx.fetchall("SELECT request_id FROM pd_exports WHERE account_id = ?", (account_id,))]
