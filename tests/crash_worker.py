"""A worker process for the crash test: `python -m tests.crash_worker ADDRESS TASK_QUEUE LEDGER_PATH`.

It is the production worker (worker.build_worker) with nothing swapped; the crash test kills it with SIGKILL at
random points and starts it again."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio.client import Client

from worker import Adapters, build_worker
from workflows.contract.converter import data_converter


async def main(address: str, task_queue: str, ledger_path: str) -> None:
    client = await Client.connect(address, data_converter=data_converter)
    adapters = Adapters.open(ledger_path)
    # A killed worker's sticky queue would hold its workflows' next tasks for the default 5 s; move them to the
    # shared queue sooner so a restarted worker picks them up.
    worker = build_worker(client, task_queue, adapters,
                          sticky_queue_schedule_to_start_timeout=timedelta(seconds=1))
    print("crash-worker ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
