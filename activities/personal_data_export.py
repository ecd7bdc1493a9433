"""PR-1 export of the personal-data vault (activities/personal_data_store.py): one JSON document per access, copy or
portability request, with what the vault, the directory and the ledger hold about the account. The document is
kept sealed under the account's subject key (an erasure makes it unreadable) and written to the export directory
as the file an operator hands over."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflows.contract.privacy import AccountParty
from workflows.rules.privacy import PersonalField

if TYPE_CHECKING:
    from activities.db import Database, Tx
    from activities.directory import Directory
    from activities.ledger import Ledger


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class VaultExports:
    """The export methods of PersonalData (which provides what is declared here)."""

    db: Database
    ledger: Ledger
    directory: Directory
    export_dir: Path

    def _seal(self, tx: Tx, account_id: str, where: str, value: str) -> tuple[str, str]:
        raise NotImplementedError

    def _open(self, tx: Tx, where: str, value: str | None, key_id: str | None) -> str | None:
        raise NotImplementedError

    def profile(self, account_id: str) -> dict[PersonalField, tuple[str, str | None, str]]:
        raise NotImplementedError

    def export(self, request_id: str, account_id: str) -> tuple[Path, str, int, dict[str, int]]:
        """Writes what the vault, the directory and the ledger hold about the account to one JSON file an
        operator can hand over. The first document of a request is kept: a repeat rewrites the same bytes."""
        text = self.stored_export(request_id)
        if text is None:  # none yet; or its subject erased since: the data as it is now
            document = json.dumps(self._document(request_id, account_id), ensure_ascii=False, indent=2,
                                  sort_keys=True)
            with self.db.transaction() as tx:
                sealed, key_id = self._seal(tx, account_id, f"pd_exports|{request_id}", document)
                tx.execute("INSERT INTO pd_exports (request_id, account_id, document, sha256, created_at, key_id)"
                           " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET document ="
                           " excluded.document, sha256 = excluded.sha256, key_id = excluded.key_id WHERE"
                           " pd_exports.key_id IS NOT NULL AND pd_exports.key_id <> excluded.key_id",
                           (request_id, account_id, sealed, _sha(document), now_iso(), key_id))
            text = self.stored_export(request_id)
        assert text is not None
        path = self.export_dir / f"{request_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        parsed = json.loads(text)
        sections = {"personal_data": len(parsed["personal_data"]), "ledger_accounts": len(parsed["ledger"]["accounts"]),
                    "ledger_transfers": len(parsed["ledger"]["transfers"]),
                    "directory_entries": len(parsed["directory"])}
        return path, _sha(text), len(text.encode()), sections

    def stored_export(self, request_id: str) -> str | None:
        """The export document; None when there is none or its subject was erased since."""
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT document, key_id FROM pd_exports WHERE request_id = ?", (request_id,))
            return None if row is None else self._open(tx, f"pd_exports|{request_id}", row[0], row[1])

    def _document(self, request_id: str, account_id: str) -> dict[str, Any]:
        profile = self.profile(account_id)
        directory: dict[str, Any] = {}
        client, creator = self.directory.client(account_id), self.directory.creator(account_id)
        if client.known:
            directory["client"] = client.model_dump(mode="json")
        if creator.known:
            directory["creator"] = creator.model_dump(mode="json")
        with self.db.transaction() as tx:
            for source, row_json in tx.fetchall("SELECT source, row_json FROM pd_archive WHERE account_id = ?",
                                                (account_id,)):
                directory[f"archived_{source}"] = json.loads(row_json)
            consents = [{"purpose": r[0], "withdrawn_at": r[1]} for r in tx.fetchall(
                "SELECT purpose, withdrawn_at FROM pd_consents WHERE account_id = ?", (account_id,))]
        accounts, transfers = [], {}
        for party in AccountParty:
            prefix = f"{party.value}:{account_id}:"
            accounts += [{"name": a.name, "balance_fen": a.balance_fen, "available_fen": a.available_fen}
                         for a in self.ledger.accounts(prefix)]
            for t in self.ledger.transfers(account_prefix=prefix):
                transfers[t.id] = {"business_key": t.business_key, "debit_account": t.debit_account,
                                   "credit_account": t.credit_account, "amount_fen": t.amount_fen, "kind": t.kind,
                                   "created_at": t.created_at, "status": t.status}
        return {
            "request_id": request_id, "account_id": account_id, "generated_at": now_iso(),
            "personal_data": {f.value: {"value": v, "status": s} for f, (_, v, s) in sorted(profile.items())},
            "directory": directory, "consents_withdrawn": consents,
            "ledger": {"accounts": accounts, "transfers": sorted(transfers.values(), key=lambda t: t["created_at"])},
        }


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
