"""What must hold after a fault run (bench/faults.py): every piece settled exactly once at its price, no business key
posted twice, no refund twice, conservation to the fen (the whole ledger and each task's escrow), nothing left
running or stuck, and every workflow's history replays."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.worker import Replayer

from activities.ledger import ConservationBroken
from bench.fault_infra import Workers
from bench.phases import PRICE_FEN
from worker import WORKFLOWS, workflow_runner
from workflows.contract.converter import MessageArguments
from workflows.contract.names import mount_task_id, mounted_content_id

if TYPE_CHECKING:
    from bench.faults import Kill, Run

SETTLE_TIMEOUT_S = 120
FEE_FEN = 3 * PRICE_FEN  # CONVERSIONS_PER_PIECE conversions at the bench's price


@dataclass
class Verdict:
    pieces: int
    settled: int = 0
    lost_replies: int = 0  # worker kills aimed between a settlement's commit and its reply
    double_payments: int = 0
    double_platform_fees: int = 0
    lost_settlements: int = 0
    wrong_fees: int = 0
    duplicate_business_keys: int = 0
    double_refunds: int = 0
    refunded_tasks: int = 0
    conserved: bool = False
    stuck: list[str] = field(default_factory=list)
    replay_failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    settle_wait_s: float = 0.0
    kills: list[Kill] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body = {k: v for k, v in asdict(self).items() if k != "kills"}
        return {**body, "stuck": self.stuck[:20], "replay_failures": self.replay_failures[:20],
                "passed": not self.problems}


async def _describe(run: Run, workflow_id: str) -> Any:
    return await run.client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
        namespace=run.client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)))


async def wait_settled(run: Run, verdict: Verdict) -> None:
    from bench.faults import quietly, settled_count

    began = time.monotonic()
    while quietly(lambda: settled_count(run))() < len(run.pieces):
        if time.monotonic() - began > SETTLE_TIMEOUT_S:
            verdict.problems.append(f"not every piece settled within {SETTLE_TIMEOUT_S} s")
            break
        await asyncio.sleep(0.1)
    # A piece completes once its settlement's reply reached the server: wait for the workflows too.
    pieces = [mounted_content_id(p.task_id, p.content_id) for p in run.pieces]
    while time.monotonic() - began < SETTLE_TIMEOUT_S:
        statuses = await asyncio.gather(*(_describe(run, w) for w in pieces))
        if all(s.workflow_execution_info.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
               for s in statuses):
            break
        await asyncio.sleep(0.5)
    verdict.settle_wait_s = round(time.monotonic() - began, 1)


def check_money(run: Run, verdict: Verdict) -> None:
    ledger = run.adapters.ledger
    with run.adapters.db.transaction() as tx:
        fees = tx.fetchall("SELECT memo, business_key, amount_fen FROM transfers WHERE kind = 'settle_fee'")
        platform = tx.fetchall("SELECT memo FROM transfers WHERE kind = 'settle_platform_fee'")
        refunds = tx.fetchall("SELECT debit_account FROM transfers WHERE kind = 'refund'")
        keys = tx.fetchall("SELECT business_key, COUNT(*) FROM transfers GROUP BY business_key HAVING COUNT(*) > 1")
        closures = tx.fetchall("SELECT task_id, content_id FROM content_closures")
    # A double payment is a second fee posting for one piece, whatever its key says (a retry that made up a new
    # key must be caught too); pieces are named per task, and content ids are unique in the run.
    paid = Counter(memo for memo, _, _ in fees)
    wanted = {p.content_id for p in run.pieces}
    verdict.settled = len(set(paid) & wanted)
    verdict.double_payments = sum(n - 1 for n in paid.values())  # pieces' fees paid again
    verdict.double_platform_fees = sum(n - 1 for n in Counter(memo for (memo,) in platform).values())
    verdict.lost_settlements = len(wanted - set(paid))
    verdict.wrong_fees = sum(1 for _, _, amount in fees if int(amount) != FEE_FEN)
    verdict.duplicate_business_keys = len(keys)
    refunded = Counter(account for (account,) in refunds)
    verdict.refunded_tasks = len(refunded)
    verdict.double_refunds = sum(n - 1 for n in refunded.values())
    closed = Counter(content for _, content in closures)
    conserved = ledger.conservation_total() == 0
    try:
        ledger.check_conservation()
    except ConservationBroken as error:
        conserved = False
        verdict.problems.append(f"conservation: {error}")
    for task_id in run.tasks:
        money = ledger.task_money(task_id)
        if money["frozen_fen"] != (money["paid_to_creators_fen"] + money["platform_fees_fen"] + money["refunded_fen"]
                                   + money["escrow_balance_fen"]):
            conserved = False
            verdict.problems.append(f"task {task_id}: frozen {money['frozen_fen']} fen is not accounted for")
    verdict.conserved = conserved
    for name, value in (("double payments", verdict.double_payments),
                        ("platform fees charged twice", verdict.double_platform_fees), ("lost settlements", verdict.lost_settlements),
                        ("fees not at the price", verdict.wrong_fees), ("double refunds", verdict.double_refunds),
                        ("business keys posted twice", verdict.duplicate_business_keys),
                        ("pieces closed twice", sum(n - 1 for n in closed.values()))):
        if value:
            verdict.problems.append(f"{name}: {value}")
    if not conserved:
        verdict.problems.append("conservation broken")


async def check_workflows(run: Run, verdict: Verdict) -> None:
    """Pieces completed; tasks (which wait out their periods) idle: no activity retrying, no workflow task failing."""
    for piece in run.pieces:
        info = await _describe(run, mounted_content_id(piece.task_id, piece.content_id))
        if info.workflow_execution_info.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
            verdict.stuck.append(f"{piece.content_id}: status {info.workflow_execution_info.status}, "
                                 f"activities {[(a.activity_type.name, a.attempt) for a in info.pending_activities]}")
    for task_id in run.tasks:
        info = await _describe(run, mount_task_id(task_id))
        task = info.pending_workflow_task
        if info.pending_activities or (task.ByteSize() and task.attempt > 1):
            verdict.stuck.append(f"{task_id}: activities {[a.activity_type.name for a in info.pending_activities]}"
                                 f", workflow task attempt {task.attempt}")
    if verdict.stuck:
        verdict.problems.append(f"{len(verdict.stuck)} workflow(s) left running or stuck")


async def check_replay(run: Run, verdict: Verdict) -> None:
    from bench.harness import BENCH_CONVERTER

    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=BENCH_CONVERTER, workflow_runner=workflow_runner(),
                        interceptors=[MessageArguments()])
    ids = [mount_task_id(t) for t in run.tasks] + [mounted_content_id(p.task_id, p.content_id) for p in run.pieces]
    for workflow_id in ids:
        history = await run.client.get_workflow_handle(workflow_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            verdict.replay_failures.append(f"{workflow_id}: {result.replay_failure}")
    if verdict.replay_failures:
        verdict.problems.append(f"{len(verdict.replay_failures)} histories do not replay")


async def check_run(run: Run, workers: Workers) -> Verdict:
    verdict = Verdict(pieces=len(run.pieces), kills=run.kills, lost_replies=run.lost_replies)
    await wait_settled(run, verdict)
    check_money(run, verdict)
    await check_workflows(run, verdict)
    await check_replay(run, verdict)
    if dead := workers.dead():
        verdict.problems.append(f"worker(s) {dead} died on their own")
    run.log(f"{verdict.pieces} pieces: settled {verdict.settled}, double payments {verdict.double_payments}, "
            f"lost settlements {verdict.lost_settlements}, conserved {verdict.conserved}, stuck {len(verdict.stuck)},"
            f" replay failures {len(verdict.replay_failures)}: {'PASSED' if not verdict.problems else 'FAILED'}")
    for problem in verdict.problems:
        run.log(f"problem: {problem}")
    return verdict
