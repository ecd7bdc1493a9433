"""What must hold after a fault run (bench/faults.py): every piece settled exactly once at its price, every task
refunded exactly once with what its pieces left (frozen - paid to creators - platform fees), no business key posted
twice, conservation to the fen (the whole ledger and each task's escrow), nothing left running or stuck (pieces and
tasks completed), and every workflow's history replays."""

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
from starter import client as api
from worker import WORKFLOWS, workflow_runner
from workflows.contract.converter import MessageArguments
from workflows.contract.mount_task import TaskStage
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
    lost_refund_replies: int = 0  # ... between a refund's commit and its reply
    double_payments: int = 0
    double_platform_fees: int = 0
    lost_settlements: int = 0
    wrong_fees: int = 0
    duplicate_business_keys: int = 0
    tasks: int = 0
    refunded_tasks: int = 0
    refunded_fen: int = 0
    double_refunds: int = 0  # refund postings past the first, over all tasks
    wrong_refunds: list[str] = field(default_factory=list)
    unrefunded_tasks: list[str] = field(default_factory=list)
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
    # A piece completes once its settlement's reply reached the server, a task once its refund's did: wait for
    # the workflows too.
    ids = [mounted_content_id(p.task_id, p.content_id) for p in run.pieces] + [mount_task_id(t) for t in run.tasks]
    while time.monotonic() - began < SETTLE_TIMEOUT_S:
        statuses = await asyncio.gather(*(_describe(run, w) for w in ids))
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
    closed = Counter(content for _, content in closures)
    conserved = ledger.conservation_total() == 0
    try:
        ledger.check_conservation()
    except ConservationBroken as error:
        conserved = False
        verdict.problems.append(f"conservation: {error}")
    for task_id in run.tasks:
        money = ledger.task_money(task_id)
        if money["frozen_fen"] != (money["paid_fen"] + money["platform_fees_fen"] + money["refunded_fen"]
                                   + money["escrow_balance_fen"]):
            conserved = False
            verdict.problems.append(f"task {task_id}: frozen {money['frozen_fen']} fen is not accounted for")
    verdict.conserved = conserved
    for name, value in (("double payments", verdict.double_payments),
                        ("platform fees charged twice", verdict.double_platform_fees),
                        ("lost settlements", verdict.lost_settlements),
                        ("fees not at the price", verdict.wrong_fees),
                        ("business keys posted twice", verdict.duplicate_business_keys),
                        ("pieces closed twice", sum(n - 1 for n in closed.values()))):
        if value:
            verdict.problems.append(f"{name}: {value}")
    if not conserved:
        verdict.problems.append("conservation broken")


async def check_refunds(run: Run, verdict: Verdict) -> None:
    """AM-13: every task refunded exactly once (one refund posting out of its escrow, whatever its key), of what
    its pieces left: frozen - paid to creators - platform fees, to the fen, its escrow empty; and the task's own
    result says so (stage refunded, the same amount)."""
    ledger = run.adapters.ledger
    verdict.tasks = len(run.tasks)
    for task_id in run.tasks:
        money = ledger.task_money(task_id)
        postings = [t for t in ledger.transfers(account_prefix=f"task:{task_id}:escrow", limit=100_000)
                    if t.kind == "refund"]
        if not postings:
            verdict.unrefunded_tasks.append(task_id)
            continue
        verdict.refunded_tasks += 1
        verdict.double_refunds += len(postings) - 1
        verdict.refunded_fen += sum(t.amount_fen for t in postings)
        owed = money["frozen_fen"] - money["paid_fen"] - money["platform_fees_fen"]
        status = await api.workflow_status(run.client, mount_task_id(task_id))
        if status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:  # its result would never come
            said, agrees = f"nothing: its workflow's status is {status}", False
        else:
            result = await api.task_result(run.client, task_id)
            said = f"stage {result.stage.value}, refunded {result.refunded_fen} fen"
            agrees = result.stage is TaskStage.REFUNDED and result.refunded_fen == owed
        if sum(t.amount_fen for t in postings) != owed or money["escrow_balance_fen"] != 0 or not agrees:
            verdict.wrong_refunds.append(
                f"{task_id}: frozen {money['frozen_fen']} - paid {money['paid_fen']} - platform fees "
                f"{money['platform_fees_fen']} = {owed} fen owed; refunded {[t.amount_fen for t in postings]} fen, "
                f"escrow left {money['escrow_balance_fen']} fen; the task says {said}")
    for name, value in (("tasks not refunded", verdict.unrefunded_tasks),
                        ("refunds not as owed", verdict.wrong_refunds)):
        if value:
            verdict.problems.append(f"{name}: {value[:10]}")
    if verdict.double_refunds:
        verdict.problems.append(f"double refunds: {verdict.double_refunds}")


async def check_workflows(run: Run, verdict: Verdict) -> None:
    """Pieces and tasks completed (every task was ended during the run): none running, failed or terminated."""
    ids = [(p.content_id, mounted_content_id(p.task_id, p.content_id)) for p in run.pieces]
    for name, workflow_id in [*ids, *((t, mount_task_id(t)) for t in run.tasks)]:
        info = await _describe(run, workflow_id)
        if info.workflow_execution_info.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
            task = info.pending_workflow_task
            verdict.stuck.append(f"{name}: status {info.workflow_execution_info.status}, "
                                 f"activities {[(a.activity_type.name, a.attempt) for a in info.pending_activities]}"
                                 f", workflow task attempt {task.attempt if task.ByteSize() else 0}")
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
    verdict = Verdict(pieces=len(run.pieces), kills=run.kills, lost_replies=run.lost_replies,
                      lost_refund_replies=run.lost_refund_replies)
    await wait_settled(run, verdict)
    check_money(run, verdict)
    await check_refunds(run, verdict)
    await check_workflows(run, verdict)
    await check_replay(run, verdict)
    if dead := workers.dead():
        verdict.problems.append(f"worker(s) {dead} died on their own")
    run.log(f"{verdict.pieces} pieces: settled {verdict.settled}, double payments {verdict.double_payments}, "
            f"lost settlements {verdict.lost_settlements}; {verdict.tasks} tasks: refunded {verdict.refunded_tasks}"
            f" ({verdict.refunded_fen} fen), double refunds {verdict.double_refunds}, wrong refunds "
            f"{len(verdict.wrong_refunds)}; conserved {verdict.conserved}, stuck {len(verdict.stuck)},"
            f" replay failures {len(verdict.replay_failures)}: {'PASSED' if not verdict.problems else 'FAILED'}")
    for problem in verdict.problems:
        run.log(f"problem: {problem}")
    return verdict
