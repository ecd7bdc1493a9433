"""A worker process for the crash test: `python -m tests.crash_worker ADDRESS TASK_QUEUE LEDGER_PATH SEED`.

It is the production worker (worker.build_worker). The crash test kills it from outside with SIGKILL at random
points and starts it again. It can also kill itself where an outside kill rarely lands: between a money activity's
database commit and the moment its result reaches the server (the reply is lost, the activity runs again). That
happens only while the file named by CRASH_SELF_KILLS holds a positive budget (the test writes it when it wants
such kills, each kill takes one): always after the first write of each settlement and refund activity (mount and
Xingguang), so every such idempotency key is tested in every run, and with a seeded probability after the others
while budget beyond those is left, on an activity's first attempt only (a retry's reply gets through): each lost
reply costs the activity's whole start-to-close timeout in real time (the test server skips no time while an
activity runs), and a task's sequential money activities killed again and again would pass the test's time bound.
The activities themselves are the real ones, nothing in workflow code knows about it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import threading
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities.content_batches import ContentBatchActivities, ContentBatches
from activities.ledger import LedgerActivities
from activities.xg_ledger import XgLedgerActivities
from worker import Adapters, build_worker
from workflows.contract.converter import data_converter
from workflows.contract.definitions import activity_name

SELF_KILL_PROBABILITY = 0.5


class SelfKills:
    """The budget of self-kills, shared by successive worker processes through a file: the number left on the
    first line, then the activities already killed after, one a line. Each of `always` is killed after once (while
    budget lasts); a first attempt's write is killed after with a probability while budget beyond the `always` not
    yet killed after is left."""

    def __init__(self, path: Path | None, seed: int, always: list[str]) -> None:
        self.path = path
        self.rng = random.Random(seed)
        self.always = always
        self.lock = threading.Lock()  # activities run in threads

    def take(self, name: str, first_attempt: bool) -> bool:
        with self.lock:
            if self.path is None or not self.path.exists():
                return False
            left_line, *done = (self.path.read_text() or "0").splitlines()
            left, reserved = int(left_line), len(set(self.always) - set(done))
            due = name in self.always and name not in done
            if left <= 0 or (not due and (not first_attempt or left <= reserved
                                          or self.rng.random() >= SELF_KILL_PROBABILITY)):
                return False
            self.path.write_text("\n".join([str(left - 1), *done, name]))
            return True


def dying_after_write(fn: Callable[..., Any], kills: SelfKills) -> Callable[..., Any]:
    def after_write(request: Any) -> Any:
        result = fn(request)  # committed in the ledger / on the main site
        if kills.take(activity_name(fn), activity.info().attempt == 1):
            print(f"{time.strftime('%H:%M:%S')} crash-worker: killing itself after {activity_name(fn)} wrote",
                  flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    after_write.__annotations__ = typing.get_type_hints(fn)
    return activity.defn(name=activity_name(fn))(after_write)


async def main(address: str, task_queue: str, ledger_path: str, seed: str) -> None:
    client = await Client.connect(address, data_converter=data_converter)
    adapters = Adapters.open(ledger_path)
    kills_file = os.environ.get("CRASH_SELF_KILLS")
    # The activities that move the money at the end (authorized-mount and Xingguang tasks): a reply lost after
    # their write is the case an idempotency key exists for. Settlements and refunds are lost once in every run.
    ledger = LedgerActivities(adapters.ledger)
    xg_ledger = XgLedgerActivities(adapters.ledger)
    always = [ledger.settle, ledger.refund, xg_ledger.settle_piece, xg_ledger.refund]
    # A piece's batches are recorded, given back and accrued by one call (activities/content_batches.py): a crash
    # after its commit is answered as its first try was when the call runs again.
    batches = ContentBatchActivities(ContentBatches(adapters.db, adapters.ledger))
    money = [ledger.release, batches.reconcile, *always]
    kills = SelfKills(Path(kills_file) if kills_file else None, int(seed), [activity_name(fn) for fn in always])
    # No sticky cache: every workflow task goes to the shared queue and replays the history from the start, so
    # each crash is also a replay. (With a cache, the time-skipping test server keeps sending a killed worker's
    # workflows' tasks and queries to that worker's sticky queue: runs stalled there, with a query never answered.)
    worker = build_worker(client, task_queue, adapters,
                          replace_activities=[dying_after_write(fn, kills) for fn in money],
                          max_cached_workflows=0)
    print(f"{time.strftime('%H:%M:%S')} crash-worker ready", flush=True)
    if ready_file := os.environ.get("CRASH_READY"):
        Path(ready_file).write_text("ready")
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
