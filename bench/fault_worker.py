"""A worker process of the fault run: `python -m bench.fault_worker ADDRESS TASK_QUEUE LEDGER_DSN`.

It is the production worker (worker.build_worker on worker.Adapters). It connects again until the server answers
(the fault run starts it again while the Temporal server or PostgreSQL may be down).

The broken build: with FAULTS_BROKEN_SETTLE_KEY=key (or closure, see UniqueSettleKeyLedger; read here only, by
this bench module: production code has no such switch) the ledger's settlement makes its idempotency keys unique per
call, the bug the fault run must catch: a settlement retried after its commit pays the piece again.

Lost replies: while the file FAULTS_LOST_REPLY names exists, the worker kills itself (SIGKILL) right after a
settlement's commit, before its reply reaches the server, and the kill removes the file (one kill per arming): the
settlement runs again on another worker, the case its idempotency key is for. An outside SIGKILL rarely lands
exactly there. FAULTS_LOST_REFUND_REPLY does the same after a task's refund (AM-13: refunded once)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import typing
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from temporalio import activity
from temporalio.client import Client

from activities.db import Database, Tx
from activities.directory import Directory
from activities.ledger import Ledger, LedgerActivities, Status, Transfer
from activities.main_site import MainSite
from bench.harness import BENCH_CONVERTER
from worker import Adapters, build_worker
from workflows.contract.definitions import activity_name

CONNECT_DEADLINE_S = 120


class SaltedClosures:
    """A Tx whose content_closures rows carry the call's salted content id (the `closure` broken build); the ledger
    writes a closure with `fetchone` (INSERT ... RETURNING its number)."""

    def __init__(self, tx: Tx, salt: Callable[[str], str]) -> None:
        self._tx, self._salt = tx, salt
        self.dialect = tx.dialect

    def fetchone(self, sql: str, params: Sequence[Any] = (), **kwargs: Any) -> Any:
        # The closure is written with its number taken in the same statement: (task_id, content_id, ...).
        if sql.startswith("INSERT INTO content_closures"):
            params = (params[0], self._salt(f"settle:{params[1]}").removeprefix("settle:"), *params[2:])
        return self._tx.fetchone(sql, params, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


class UniqueSettleKeyLedger(Ledger):
    """The broken build's ledger: every `settle` call writes under keys of its own (operation and postings); with
    FAULTS_BROKEN_SETTLE_KEY=closure also its closure row (which the ledger otherwise allows once per piece)."""

    _call = threading.local()

    def settle(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._call.nonce = uuid.uuid4().hex[:8]
        try:
            return super().settle(*args, **kwargs)
        finally:
            self._call.nonce = None

    def _salted(self, key: str) -> str:
        nonce = getattr(self._call, "nonce", None)
        return f"{key}#{nonce}" if nonce and key.startswith("settle:") else key

    def _once(self, key: str, apply: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        if os.environ.get("FAULTS_BROKEN_SETTLE_KEY") == "closure":
            unsalted = apply

            def apply(tx: Any) -> dict[str, Any]:
                return unsalted(SaltedClosures(tx, self._salted))
        return super()._once(self._salted(key), apply)

    def _new(self, business_key: str, debit: str, credit: str, amount_fen: int, kind: str, memo: str,
             status: Status, pending_id: str | None = None, corrects_id: str | None = None) -> Transfer:
        return super()._new(self._salted(business_key), debit, credit, amount_fen, kind, memo, status, pending_id,
                            corrects_id)


def dying_after(call: Callable[[Any], Any], budget: Path, what: Callable[[Any], str]) -> Callable[..., Any]:
    """The activity `call` (a settlement or a refund), after whose commit the worker kills itself if it takes the
    file `budget` away. Removing a file is atomic: of the workers finishing such a call at once, only one dies (a
    count read and written back let two die, and the second was not started again)."""

    def call_then_maybe_die(request: Any) -> Any:
        result = call(request)  # committed
        try:
            budget.unlink()
        except FileNotFoundError:
            return result
        print(f"{time.strftime('%H:%M:%S')} fault-worker {os.getpid()}: killing itself after {what(request)}",
              flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    call_then_maybe_die.__annotations__ = typing.get_type_hints(call)  # the activity's request and result models
    return activity.defn(name=activity_name(call))(call_then_maybe_die)


def adapters(dsn: str) -> Adapters:
    if os.environ.get("FAULTS_BROKEN_SETTLE_KEY") not in ("key", "closure"):
        return Adapters.open(dsn)
    db = Database(dsn)
    return Adapters(db=db, ledger=UniqueSettleKeyLedger(db), directory=Directory(db), main_site=MainSite(db))


async def connect(address: str) -> Client:
    deadline = time.monotonic() + CONNECT_DEADLINE_S
    while True:
        try:
            return await Client.connect(address, data_converter=BENCH_CONVERTER)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def main(address: str, task_queue: str, dsn: str) -> None:
    client = await connect(address)
    while True:
        try:
            opened = adapters(dsn)
            break
        except psycopg.Error:  # PostgreSQL down at start: the schema check cannot run yet
            await asyncio.sleep(0.2)
    try:
        replace = []
        ledger = LedgerActivities(opened.ledger)
        if lost_reply := os.environ.get("FAULTS_LOST_REPLY"):
            replace.append(dying_after(ledger.settle, Path(lost_reply), lambda r: f"settling {r.content_id}"))
        if lost_refund := os.environ.get("FAULTS_LOST_REFUND_REPLY"):
            replace.append(dying_after(ledger.refund, Path(lost_refund), lambda r: f"refunding task {r.task_id}"))
        async with build_worker(client, task_queue, opened, replace_activities=replace):
            print(f"{time.strftime('%H:%M:%S')} fault-worker {os.getpid()} ready", flush=True)
            await asyncio.Event().wait()
    finally:
        opened.db.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
