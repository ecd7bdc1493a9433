"""The double-entry core of the ledger (activities/ledger.py): posting a transfer once per business key, holds and
their resolution, corrections, reading balances and the journal, and the internals every operation is built on
(account locks in name order, the budget row, operations recorded once by key)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from activities.db import Database, IntegrityError, Tx
from activities.ledger_model import (
    TRANSFER_COLUMNS,
    AccountBalance,
    ConservationBroken,
    InsufficientFunds,
    LedgerError,
    PendingAlreadyResolved,
    Status,
    TaskClosed,
    Transfer,
    UnknownTask,
    UnknownTransfer,
    _account_name,
    _fen,
    _utc_now,
    may_go_negative,
    transfer_id,
)

# SQLite: a transfer row. PostgreSQL: one posting, the function `ledger_post` of activities/ledger_schema.py and
# its 12 arguments.
INSERT_TRANSFER = (f"INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                   " ON CONFLICT DO NOTHING")
LEDGER_POST = "SELECT * FROM ledger_post(?, ?, ?, ?, CAST(? AS BIGINT), ?, ?, ?, ?, ?, ?, CAST(? AS BIGINT))"
# Its outcomes after which the accounts are created and locked and it is asked again (nothing was written).
ASK_AGAIN_LOCKED = ("missing", "insufficient")


def _post_arguments(asked: Transfer, resolves: Transfer | None) -> tuple[Any, ...]:
    return (*asked.row(), resolves.amount_fen if resolves is not None else 0)


class Postings:
    """What every ledger operation is made of; Ledger adds the operations of a task."""

    db: Database

    # ---- primitives -------------------------------------------------------------------------------------------

    def transfer(self, business_key: str, debit: str, credit: str, amount_fen: int, kind: str,
                 memo: str = "") -> Transfer:
        return self._post_alone(self._new(business_key, debit, credit, amount_fen, kind, memo, "posted"))

    def hold(self, business_key: str, debit: str, credit: str, amount_fen: int, memo: str = "") -> Transfer:
        """Reserves money: the debit account's available balance drops now, nothing is posted yet."""
        return self._post_alone(self._new(business_key, debit, credit, amount_fen, "hold", memo, "pending"))

    def post_pending(self, business_key: str, pending_business_key: str, amount_fen: int | None = None,
                     memo: str = "") -> Transfer:
        """Posts a hold, whole or in part (`amount_fen` below the hold); the rest of the hold is released."""
        with self.db.transaction() as tx:
            pending = self._pending(tx, pending_business_key)
            amount = pending.amount_fen if amount_fen is None else _fen(amount_fen, "amount_fen", positive=True)
            if amount > pending.amount_fen:
                raise ValueError(f"cannot post {amount} fen of a {pending.amount_fen} fen hold")
            asked = self._new(business_key, pending.debit_account, pending.credit_account, amount, "post", memo,
                              "posted_pending", pending_id=pending.id)
            return self._post(tx, asked, resolves=pending)

    def void_pending(self, business_key: str, pending_business_key: str, memo: str = "") -> Transfer:
        with self.db.transaction() as tx:
            pending = self._pending(tx, pending_business_key)
            asked = self._new(business_key, pending.debit_account, pending.credit_account, pending.amount_fen,
                              "void", memo, "voided_pending", pending_id=pending.id)
            return self._post(tx, asked, resolves=pending)

    def correct(self, business_key: str, original_business_key: str, amount_fen: int | None = None,
                memo: str = "") -> Transfer:
        """Reverses (part of) a posted transfer with a new, opposite transfer; never more than was posted."""
        with self.db.transaction() as tx:
            original = self._find(tx, transfer_id(original_business_key))
            if original is None or original.status not in ("posted", "posted_pending"):
                raise UnknownTransfer(f"no posted transfer {original_business_key!r} to correct")
            self._lock_accounts(tx, [original.debit_account, original.credit_account])
            row = tx.fetchone("SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM transfers"
                              " WHERE corrects_id = ? AND id <> ?", (original.id, transfer_id(business_key)))
            left = original.amount_fen - int(row[0] if row else 0)
            amount = left if amount_fen is None else _fen(amount_fen, "amount_fen", positive=True)
            asked = self._new(business_key, original.credit_account, original.debit_account, amount, "correction",
                              memo, "posted", corrects_id=original.id)
            existing = self._find(tx, asked.id)
            if existing is not None:
                return existing.replayed(asked)
            if amount > left:
                raise ValueError(f"{original_business_key!r} has {left} fen left to correct, {amount} asked")
            return self._post(tx, asked)

    # ---- reading, for operators -------------------------------------------------------------------------------

    def balance(self, account: str) -> AccountBalance:
        with self.db.transaction() as tx:
            return self._account(tx, account)

    def accounts(self, prefix: str = "") -> list[AccountBalance]:
        with self.db.transaction() as tx:
            rows = tx.fetchall("SELECT name, may_go_negative, debits_posted, credits_posted, debits_pending,"
                               " credits_pending FROM accounts WHERE substr(name, 1, ?) = ? ORDER BY name",
                               (len(prefix), prefix))
        return [AccountBalance(r[0], bool(r[1]), *(int(v) for v in r[2:])) for r in rows]

    def transfers(self, account_prefix: str | None = None, business_key_prefix: str | None = None,
                  limit: int = 1000) -> list[Transfer]:
        where, params = "1 = 1", []
        if account_prefix is not None:
            where += (" AND (substr(debit_account, 1, ?) = ? OR substr(credit_account, 1, ?) = ?)")
            params += [len(account_prefix), account_prefix, len(account_prefix), account_prefix]
        if business_key_prefix is not None:
            where += " AND substr(business_key, 1, ?) = ?"
            params += [len(business_key_prefix), business_key_prefix]
        with self.db.transaction() as tx:
            rows = tx.fetchall(f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE {where}"
                               f" ORDER BY created_at, id LIMIT ?", (*params, limit))
        return [self._transfer(row) for row in rows]

    def conservation_total(self) -> int:
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT CAST(COALESCE(SUM(credits_posted - debits_posted), 0) AS BIGINT)"
                              " FROM accounts")
        return int(row[0]) if row else 0

    def check_conservation(self) -> None:
        """Raises ConservationBroken unless the accounts sum to 0 and every account's four totals equal what its
        transfers say (the journal and the balances agree)."""
        with self.db.transaction() as tx:
            accounts = {r[0]: tuple(int(v) for v in r[1:]) for r in tx.fetchall(
                "SELECT name, debits_posted, credits_posted, debits_pending, credits_pending FROM accounts")}
            journal = {name: [0, 0, 0, 0] for name in accounts}
            for debit, credit, amount, status, resolved in tx.fetchall(
                    "SELECT t.debit_account, t.credit_account, t.amount_fen, t.status,"
                    " (SELECT COUNT(*) FROM transfers r WHERE r.pending_id = t.id) FROM transfers t"):
                if status in ("posted", "posted_pending"):
                    journal[debit][0] += int(amount)
                    journal[credit][1] += int(amount)
                elif status == "pending" and not resolved:
                    journal[debit][2] += int(amount)
                    journal[credit][3] += int(amount)
        total = sum(credits - debits for debits, credits, _, _ in accounts.values())
        disagreeing = sorted(name for name in accounts if tuple(journal[name]) != accounts[name])
        if total != 0 or disagreeing:
            raise ConservationBroken(f"sum of balances {total} fen; accounts disagreeing with the journal:"
                                     f" {disagreeing}")

    # ---- internals --------------------------------------------------------------------------------------------

    def _new(self, business_key: str, debit: str, credit: str, amount_fen: int, kind: str, memo: str,
             status: Status, pending_id: str | None = None, corrects_id: str | None = None) -> Transfer:
        if not business_key:
            raise ValueError("business_key must not be empty")
        _account_name(debit), _account_name(credit)
        if debit == credit:
            raise ValueError(f"a transfer needs two accounts, got {debit!r} twice")
        return Transfer(transfer_id(business_key), business_key, debit, credit,
                        _fen(amount_fen, "amount_fen", positive=True), kind, memo, _utc_now(), pending_id,
                        corrects_id, status)

    def _post(self, tx: Tx, asked: Transfer, resolves: Transfer | None = None) -> Transfer:
        if tx.dialect == "sqlite":
            return self._post_sole_writer(tx, asked, resolves)
        return self._post_one_trip(tx, asked, resolves)

    def _post_alone(self, asked: Transfer) -> Transfer:
        """A posting that is a transaction of its own. PostgreSQL: one round trip, `ledger_post` in autocommit (the
        statement is the transaction; Database.fetchone_alone may run it again on a fresh connection, which the
        business key makes safe). When it wrote nothing because an account is missing or cannot pay, the posting
        is made again in a transaction (which creates the accounts, or says why it refuses). SQLite: BEGIN
        IMMEDIATE, `_post`, COMMIT."""
        if self.db.dialect == "postgresql":
            row = self.db.fetchone_alone(LEDGER_POST, _post_arguments(asked, None))
            if row is None or row[0] not in ASK_AGAIN_LOCKED:
                return self._posted(row, asked, None)
        with self.db.transaction() as tx:
            return self._post(tx, asked)

    def _post_one_trip(self, tx: Tx, asked: Transfer, resolves: Transfer | None) -> Transfer:
        """_post on PostgreSQL in one statement, the server-side function `ledger_post` (activities/ledger_schema.py,
        which says what it does). Only a missing account or a refusal for lack of money costs more trips: the
        function neither creates an account nor keeps a lock on one it cannot debit, so both are created if
        missing and locked (name order) and it is asked again; the answer and its explanation (InsufficientFunds,
        with the balance) then read the same balance. The refusal rolls back the caller's transaction."""
        arguments = _post_arguments(asked, resolves)
        row = tx.fetchone(LEDGER_POST, arguments)
        if row is not None and row[0] in ASK_AGAIN_LOCKED:
            self._lock_accounts(tx, [asked.debit_account, asked.credit_account])
            row = tx.fetchone(LEDGER_POST, arguments)
            if row is not None and row[0] == "insufficient":
                self._require_available(tx, asked.debit_account, asked.amount_fen)
                # Reached only if the check above is bypassed: the debit account's CHECK refuses the overdraft.
                self._move_balances(tx, asked, resolves)
        return self._posted(row, asked, resolves)

    def _posted(self, row: tuple[Any, ...] | None, asked: Transfer, resolves: Transfer | None) -> Transfer:
        """The transfer `ledger_post` answered with (its outcome in row[0], see activities/ledger_schema.py)."""
        outcome = row[0] if row is not None else None
        if outcome == "posted":
            return asked
        if row is not None and outcome == "duplicate":
            return self._transfer(row[2:]).replayed(asked)
        if row is not None and outcome == "resolved" and resolves is not None:
            raise PendingAlreadyResolved(resolves.business_key, row[1])
        raise LedgerError(f"transfer {asked.business_key!r} was not posted: {outcome}")

    def _post_sole_writer(self, tx: Tx, asked: Transfer, resolves: Transfer | None) -> Transfer:
        """_post on SQLite in 3 statements instead of 9 (docs/bench.md, "Limits found" 8). `BEGIN IMMEDIATE` has
        made this transaction the only writer, so nothing changes between its statements: the transfer is inserted
        first (its foreign keys refuse it while an account is missing: the accounts are created and it is inserted
        again) and its UNIQUE id / business key / pending_id say whether the key (or the hold's resolution) exists
        already, and the accounts' CHECK `available_not_negative` refuses an overdraft (the transaction then rolls
        back whole, the insert with it) and is then explained as InsufficientFunds. The same guarantees as the
        PostgreSQL path, held by the same constraints."""
        try:
            inserted = tx.execute(INSERT_TRANSFER, asked.row())
        except IntegrityError as error:
            if "FOREIGN KEY" not in str(error):
                raise
            # An account does not exist yet (the transfers' foreign keys say so, and the failed statement is
            # undone alone): created, and the transfer inserted again.
            self._lock_accounts(tx, [asked.debit_account, asked.credit_account])
            inserted = tx.execute(INSERT_TRANSFER, asked.row())
        if not inserted:
            existing = self._find(tx, asked.id)
            if existing is not None:
                return existing.replayed(asked)
            if resolves is not None:  # the hold's pending_id is taken: resolved under another key
                resolution = tx.fetchone("SELECT business_key FROM transfers WHERE pending_id = ?", (resolves.id,))
                raise PendingAlreadyResolved(resolves.business_key, resolution[0] if resolution else "another key")
            raise LedgerError(f"transfer {asked.business_key!r} collided without a row")
        try:
            self._move_balances(tx, asked, resolves)
        except IntegrityError as error:
            if "available_not_negative" in str(error):  # say why, with the balance (InsufficientFunds)
                self._require_available(tx, asked.debit_account, asked.amount_fen)
            raise
        return asked

    @staticmethod
    def _move_balances(tx: Tx, asked: Transfer, resolves: Transfer | None) -> None:
        """The two accounts' counters after posting `asked` (and releasing the hold it resolves): debit first, so
        that an overdraft is refused by the debit account's CHECK before the credit moves."""
        released = resolves.amount_fen if resolves is not None else 0
        posted = asked.amount_fen if asked.status in ("posted", "posted_pending") else 0
        pending = asked.amount_fen if asked.status == "pending" else 0
        moved = tx.execute("UPDATE accounts SET debits_posted = debits_posted + ?,"
                           " debits_pending = debits_pending + ? WHERE name = ?",
                           (posted, pending - released, asked.debit_account))
        moved += tx.execute("UPDATE accounts SET credits_posted = credits_posted + ?,"
                            " credits_pending = credits_pending + ? WHERE name = ?",
                            (posted, pending - released, asked.credit_account))
        if moved != 2:  # an account missing (the transfers' foreign keys make this unreachable): nothing stays
            raise LedgerError(f"transfer {asked.business_key!r}: {2 - moved} of its accounts do not exist")

    def _lock_accounts(self, tx: Tx, names: Sequence[str]) -> None:
        """Creates the accounts that do not exist yet and, on PostgreSQL, locks them in name order (one trip: the
        function `ledger_lock_accounts`). On SQLite one statement: `BEGIN IMMEDIATE` already serializes writers,
        there is nothing to lock."""
        if tx.dialect == "sqlite":
            ordered, now = sorted(set(names)), _utc_now()
            tx.execute("INSERT INTO accounts (name, may_go_negative, created_at) VALUES "
                       + ", ".join(["(?, ?, ?)"] * len(ordered)) + " ON CONFLICT DO NOTHING",
                       [v for name in ordered for v in (name, int(may_go_negative(name)), now)])
            return
        ordered = sorted(set(names))
        tx.execute("SELECT ledger_lock_accounts(CAST(? AS TEXT[]), CAST(? AS INTEGER[]), ?)",
                   (ordered, [int(may_go_negative(name)) for name in ordered], _utc_now()))

    def _require_available(self, tx: Tx, account: str, needed_fen: int) -> None:
        state = self._account(tx, account)
        if not state.may_go_negative and state.available_fen < needed_fen:
            raise InsufficientFunds(account, state.available_fen, needed_fen)

    def _account(self, tx: Tx, name: str) -> AccountBalance:
        row = tx.fetchone("SELECT may_go_negative, debits_posted, credits_posted, debits_pending, credits_pending"
                          " FROM accounts WHERE name = ?", (name,))
        if row is None:
            return AccountBalance(name, may_go_negative(name), 0, 0, 0, 0)
        return AccountBalance(name, bool(row[0]), *(int(v) for v in row[1:]))

    def _find(self, tx: Tx, id_: str) -> Transfer | None:
        row = tx.fetchone(f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?", (id_,))
        return None if row is None else self._transfer(row)

    @staticmethod
    def _transfer(row: tuple[Any, ...]) -> Transfer:
        return Transfer(row[0], row[1], row[2], row[3], int(row[4]), row[5], row[6], row[7], row[8], row[9], row[10])

    def _pending(self, tx: Tx, pending_business_key: str) -> Transfer:
        pending = self._find(tx, transfer_id(pending_business_key))
        if pending is None or pending.status != "pending":
            raise UnknownTransfer(f"no pending transfer {pending_business_key!r}")
        return pending

    def _budget_row(self, tx: Tx, task_id: str, *, for_update: bool = False) -> dict[str, Any]:
        row = tx.fetchone("SELECT client_id, budget_fen, spent_fen, settled_fen, platform_fee_cap_fen,"
                          " platform_fee_charged_fen, exhausted_at, refunded_at FROM task_budgets WHERE task_id = ?",
                          (task_id,), for_update=for_update)
        if row is None:
            raise UnknownTask(f"task {task_id} has no frozen budget")
        names = ("client_id", "budget_fen", "spent_fen", "settled_fen", "platform_fee_cap_fen",
                 "platform_fee_charged_fen", "exhausted_at", "refunded_at")
        return {name: int(v) if name.endswith("_fen") else v for name, v in zip(names, row, strict=True)}

    def _open_budget(self, tx: Tx, task_id: str) -> dict[str, Any]:
        budget = self._budget_row(tx, task_id, for_update=True)
        if budget["refunded_at"] is not None:
            raise TaskClosed(f"task {task_id} was refunded at {budget['refunded_at']}; its money is closed")
        return budget

    def _once(self, key: str, apply: Callable[[Tx], dict[str, Any]]) -> dict[str, Any]:
        """Runs a compound operation once per key: the first caller claims the key, a concurrent caller waits for
        it (PostgreSQL blocks on the uncommitted key) and then reads the recorded result."""
        with self.db.transaction() as tx:
            claimed = tx.execute("INSERT INTO operations (key, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 (key, _utc_now()))
            if not claimed:
                row = tx.fetchone("SELECT result_json FROM operations WHERE key = ?", (key,))
                return {**json.loads(row[0] if row else "{}"), "duplicate": True}
            result = apply(tx)
            tx.execute("UPDATE operations SET result_json = ? WHERE key = ?", (json.dumps(result), key))
        return {**result, "duplicate": False}
