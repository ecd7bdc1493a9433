"""A worker process of the fault run: `python -m bench.fault_worker ADDRESS TASK_QUEUE LEDGER_DSN`.

It is the production worker (worker.build_worker on worker.Adapters). It connects again until the server answers
(the fault run starts it again while the Temporal server or PostgreSQL may be down).

The broken build: with FAULTS_BROKEN_SETTLE_KEY=1 (read here only, by this bench module; production code has no
such switch) the ledger's settlement makes its idempotency keys unique per call, the bug the fault run must
catch: a settlement retried after its commit pays the piece again."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from temporalio.client import Client

from activities.db import Database
from activities.directory import Directory
from activities.ledger import Ledger, Status, Transfer
from activities.main_site import MainSite
from bench.harness import BENCH_CONVERTER
from worker import Adapters, build_worker

CONNECT_DEADLINE_S = 120


class UniqueSettleKeyLedger(Ledger):
    """The broken build's ledger: every `settle` call writes under keys of its own (operation and postings)."""

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
        return super()._once(self._salted(key), apply)

    def _new(self, business_key: str, debit: str, credit: str, amount_fen: int, kind: str, memo: str,
             status: Status, pending_id: str | None = None, corrects_id: str | None = None) -> Transfer:
        return super()._new(self._salted(business_key), debit, credit, amount_fen, kind, memo, status, pending_id,
                            corrects_id)


def adapters(dsn: str) -> Adapters:
    if os.environ.get("FAULTS_BROKEN_SETTLE_KEY") != "1":
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
        async with build_worker(client, task_queue, opened):
            print(f"{time.strftime('%H:%M:%S')} fault-worker {os.getpid()} ready", flush=True)
            await asyncio.Event().wait()
    finally:
        opened.db.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
