"""How many messages one run of a workflow takes before it continues as new (DESIGN.md "Limits that shape the
design"; docs/bench.md "Limits found" 1).

The workflows read these bounds when a run starts (`run_length.MAX_MESSAGES_PER_RUN`, never a copy bound at
import), and this module is passed through the workflow sandbox (worker.SANDBOX_PASSTHROUGH): it is the one object
a worker's every workflow sees, so a test that lowers a bound in its own process (monkeypatch) reaches the
sandboxed workflows of its in-process worker. Production never changes them.
"""

from __future__ import annotations

__all__ = ["MAX_MESSAGES_PER_RUN", "TASK_MESSAGES_PER_RUN"]

# Own bound on messages per run, below the server's 10,000 signals per run, in case the SDK's suggestion
# comes late (DESIGN.md: "Limits that shape the design").
MAX_MESSAGES_PER_RUN = 2_000

# Messages (joins, new mounts, revocations, reports from pieces) one run of a mount task takes before it continues
# as new: a mount costs ~6.7 history events, so ~7,000 events a run, under the server's 10,240 warning (docs/bench.md,
# "Limits found" 1; the shared bound MAX_MESSAGES_PER_RUN let a run reach ~13,400).
TASK_MESSAGES_PER_RUN = 1_000
