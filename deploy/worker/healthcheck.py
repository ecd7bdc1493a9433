"""Container health check of the worker: healthy when this container's worker polls its task queue.

The SDK names a worker `<pid>@<hostname>`; the Temporal server lists the pollers it saw on a task queue in the
last minute. Exit 0 when one of them is this host, 1 otherwise (docker-compose.yml: worker.healthcheck).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from starter import connection


async def polling_here() -> bool:
    # The worker's own connection configuration (TLS, API key, profile: starter/connection.py).
    configured = connection.load()
    namespace = configured.namespace
    client = await connection.connect(configured)
    described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=namespace,
        task_queue=TaskQueue(name=os.environ.get("TEMPORAL_TASK_QUEUE", "xingtu")),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    ))
    host = socket.gethostname()
    return any(poller.identity.endswith(f"@{host}") for poller in described.pollers)


def main() -> int:
    try:
        healthy = asyncio.run(asyncio.wait_for(polling_here(), timeout=8))
    except Exception as err:  # any failure to ask means "not healthy", said in one line
        print(f"unhealthy: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    if not healthy:
        print("unhealthy: no worker of this container polls the task queue", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    # Exit without interpreter finalization: the Temporal client's native runtime can abort the process there
    # (PyGILState_Release, exit 134), which would turn a verdict into a crash.
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
