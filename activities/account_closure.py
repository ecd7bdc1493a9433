"""What closing an account does to money and the directory (R-7, PR-4, PR-5), beside the personal-data vault.

R-7: cancellation waits for what still holds the account's money (`open_tasks`), then pays the available balance out
through the ledger once (`payout`). PR-4: an upheld statement dispute credits the account once
(`statement_adjustment`). PR-5: the account leaves the active directory; its row is kept in `pd_archive` as a record
of earlier conduct (`archive_directory_entry`). The ledger itself is never edited: every movement is a new transfer
with a business key, so a retry moves nothing twice.
"""

from __future__ import annotations

import json

from activities.db import Tx
from activities.personal_data_store import PersonalData, now_iso
from workflows.contract.privacy import AccountParty, money_account
from workflows.rules.privacy import HoldReason

WITHDRAWALS = "world:withdrawals"  # money paid out of the platform to the person's bank account
ADJUSTMENTS = "world:statement_adjustments"  # credits granted by upheld statement disputes (PR-4)


class AccountClosure:
    def __init__(self, vault: PersonalData) -> None:
        self.vault = vault

    def open_tasks(self, account_id: str, party: AccountParty) -> list[str]:
        """What still holds the account's money (R-7: handled before cancellation): a client's mount tasks not yet
        refunded (ledger task budgets), Xingguang tasks whose escrow still holds money, money frozen by a penalty;
        for anyone, the unsettled pieces other services hold open (`unsettled_settlement` holds)."""
        with self.vault.db.transaction() as tx:
            open_ids = [str(h.hold_id) for h in self.vault.active_holds(tx, account_id)
                        if h.reason is HoldReason.UNSETTLED_SETTLEMENT]
            if party is AccountParty.CLIENT:
                open_ids += [str(r[0]) for r in tx.fetchall(
                    "SELECT task_id FROM task_budgets WHERE client_id = ? AND refunded_at IS NULL ORDER BY task_id",
                    (account_id,))]
        if party is AccountParty.CLIENT:
            available = money_account(party, account_id)
            for freeze in self.vault.ledger.transfers(account_prefix=available, business_key_prefix="xg:freeze:"):
                escrow = self.vault.ledger.balance(freeze.credit_account).balance_fen
                if freeze.debit_account == available and escrow > 0:
                    open_ids.append(freeze.business_key.removeprefix("xg:freeze:"))
            if self.vault.ledger.balance(f"client:{account_id}:frozen").balance_fen > 0:
                open_ids.append(f"penalty-freeze:client:{account_id}")
        return open_ids

    def payout(self, account_id: str, party: AccountParty) -> tuple[str, int, str]:
        """R-7: pays the account's available balance out through the ledger, once (the key is the account's)."""
        source = money_account(party, account_id)
        key = f"account-closure-payout:{source}"
        existing = self.vault.ledger.transfers(business_key_prefix=key)
        if existing:
            return source, existing[0].amount_fen, key
        amount = self.vault.ledger.balance(source).available_fen
        if amount > 0:
            moved = self.vault.ledger.transfer(key, source, WITHDRAWALS, amount, "payout", "account cancelled")
            amount = moved.amount_fen
        return source, amount, key

    def statement_adjustment(self, account_id: str, party: AccountParty, dispute_id: str,
                             amount_fen: int) -> tuple[str, int, str]:
        """PR-4: an upheld statement dispute credits the account, once per dispute."""
        target = money_account(party, account_id)
        key = f"statement-dispute:{target}:{dispute_id}"
        moved = self.vault.ledger.transfer(key, ADJUSTMENTS, target, amount_fen, "statement_adjustment", dispute_id)
        return target, moved.amount_fen, key

    def archive_directory_entry(self, account_id: str) -> list[str]:
        """PR-5: takes the account out of the active directory (eligibility then finds it unknown) and keeps the
        row as a record of earlier conduct. Penalty records and the ledger are kept as they are."""
        sources = (("client", "directory_clients", "client_id"), ("creator", "directory_creators", "creator_id"))
        archived: list[str] = []
        with self.vault.db.transaction() as tx:
            for source, table, key in sources:
                found = tx.fetchall(f"SELECT * FROM {table} WHERE {key} = ?", (account_id,))
                if found:
                    names = [d for d in _columns(tx, table)]
                    tx.execute("INSERT INTO pd_archive (account_id, source, row_json, archived_at) VALUES (?, ?, ?, ?)"
                               " ON CONFLICT DO NOTHING",
                               (account_id, source, json.dumps(dict(zip(names, found[0], strict=True))), now_iso()))
                    tx.execute(f"DELETE FROM {table} WHERE {key} = ?", (account_id,))
                already = tx.fetchone("SELECT 1 FROM pd_archive WHERE account_id = ? AND source = ?",
                                      (account_id, source))
                if already:
                    archived.append(source)
        return archived


def _columns(tx: Tx, table: str) -> list[str]:
    if tx.dialect == "sqlite":
        return [str(r[1]) for r in tx.fetchall(f"PRAGMA table_info({table})")]
    return [str(r[0]) for r in tx.fetchall("SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                                           " AND table_schema = current_schema() ORDER BY ordinal_position",
                                           (table,))]
