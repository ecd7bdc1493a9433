"""`python -m bench.scale_checks PORT LEDGER_DB`: the checks of `python -m bench scale` for a run whose own final
`state` query could not be answered (the worker could not evict the closed task after a deadlock-detector
interrupt: docs/bench.md 2c): money from a copy of the run's ledger, the task's result from its history, every
run's history from the still-running test server (PORT: the one in `ps` for temporal-test-server)."""
import asyncio
import json
import sys
from datetime import UTC, datetime

from activities.db import Database
from activities.ledger import Ledger
from bench.harness import BENCH_CONVERTER, gather_limited
from bench.scale import HISTORY_WARNING_EVENTS, history_of, make_plan
from starter import connection
from workflows.contract import mount_task as mt
from workflows.contract.names import mount_task_id, mounted_content_id
from workflows.rules.fees import platform_fee


async def main(port: str, db: str) -> None:
    task_id = "scale-task"
    plan = make_plan(10_000, 1_000_000, 1_000, datetime(2026, 12, 1, tzinfo=UTC))
    ledger = Ledger(Database(db))
    money = ledger.task_money(task_id)
    with ledger.db.transaction() as tx:
        granted_fen, granted_count = tx.fetchone("SELECT COALESCE(SUM(granted_fen), 0), COALESCE(SUM(granted_count), 0)"
                                                 " FROM budget_accruals WHERE task_id = ? AND released = 0", (task_id,))
        counted_ids = {r[0] for r in tx.fetchall("SELECT event_id FROM budget_accruals"
                                                 " WHERE task_id = ? AND released = 0 AND granted_count > 0",
                                                 (task_id,))}
        settle_keys = tx.fetchall("SELECT business_key FROM transfers"
                                  " WHERE kind = 'settle_fee' AND business_key LIKE ?", (f"settle:{task_id}:%",))
        settled_ops = tx.fetchone("SELECT COUNT(*) FROM operations WHERE key LIKE ?", (f"settle:{task_id}:%",))[0]
    closures = ledger.task_closures(task_id, 0, 100_000)
    fees = [c.fee_fen for c in closures]
    client = await connection.connect(connection.Connection(f"localhost:{port}", source="the scale run's test server"),
                                      data_converter=BENCH_CONVERTER)
    result = None
    async for event in client.get_workflow_handle(mount_task_id(task_id)).fetch_history_events():
        if event.HasField("workflow_execution_completed_event_attributes"):
            [result] = await client.data_converter.decode(
                event.workflow_execution_completed_event_attributes.result.payloads, [mt.TaskResult])
    cheating = {b.event_id for b in plan.batches if b.cheating}
    voided = {b.event_id for b in plan.batches if b.voided}
    checks = {
        "frozen = paid + platform fees + refund":
            money["frozen_fen"] == money["paid_fen"] + money["platform_fees_fen"] + money["refunded_fen"],
        "escrow empty": money["escrow_balance_fen"] == 0,
        "ledger sums to zero": ledger.conservation_total() == 0,
        "paid <= budget": money["paid_fen"] <= plan.budget_fen,
        "paid = counted accruals (each counted conversion paid once)": money["paid_fen"] == granted_fen,
        "paid = sum of piece fees (closures in the ledger)": money["paid_fen"] == sum(fees),
        "platform fees = 10% half-up of the total (R-4)": money["platform_fees_fen"] == platform_fee(sum(fees)),
        "one settlement per piece":
            settled_ops == len(plan.pieces) and len(settle_keys) == len({k for (k,) in settle_keys}),
        "every piece closed once in the ledger": sorted(c.content_id for c in closures) == sorted(plan.pieces),
        "no cheating batch counted": not counted_ids & cheating,
        "no voided batch counted": not counted_ids & voided,
        "task result agrees with ledger": result is not None and result.stage is mt.TaskStage.REFUNDED
        and result.paid_to_creators_fen == money["paid_fen"]
        and result.refunded_fen == money["refunded_fen"]
        and result.platform_fees_fen == money["platform_fees_fen"],
    }
    ids = [mount_task_id(task_id)] + [mounted_content_id(task_id, c) for c in plan.pieces]
    runs = await gather_limited(len(ids), 20, lambda i: history_of(client, ids[i]))
    every = [(ids[i], run) for i, chain in enumerate(runs) for run in chain]
    largest = max(every, key=lambda x: x[1]["events"])
    largest_bytes = max(every, key=lambda x: x[1]["bytes"])
    largest_start = max(every, key=lambda x: x[1]["start_input_bytes"])
    report = {
        "money": money, "counted_conversions": int(granted_count), "checks": checks,
        "money_check_exact": all(checks.values()),
        "result": result.model_dump(mode="json") if result else None,
        "largest_history_events": {"workflow_id": largest[0], **largest[1]},
        "largest_history_bytes": {"workflow_id": largest_bytes[0], **largest_bytes[1]},
        "largest_start_input_bytes": {"workflow_id": largest_start[0], **largest_start[1]},
        "task_runs": runs[0],
        "continue_as_new": {"MountTaskWorkflow": len(runs[0]) - 1,
                            "MountedContentWorkflow": sum(len(r) - 1 for r in runs[1:])},
        "pieces_that_continued_as_new": sum(len(r) > 1 for r in runs[1:]),
        "runs_over_10240_events": [(w, r["events"]) for w, r in every if r["events"] > HISTORY_WARNING_EVENTS],
        "runs_total": len(every),
    }
    print(json.dumps(report, indent=1, default=str))

asyncio.run(main(sys.argv[1], sys.argv[2]))
