"""`python -m starter` commands of authorized-mount tasks (AM-*): the directory and top-ups, publish, join, mount,
conversions, revocations, cancel, and an operator's actions on a piece: voids (R-1), visibility loss and disposal
(AM-16), fee disputes (AM-11, AM-17), late batches (R-2)."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from starter import client as api
from starter.cli_common import (
    Action,
    Output,
    build,
    connect,
    count,
    dump,
    global_flags,
    instant,
    now,
    positive_fen,
    read_json,
    store,
    task_queue,
)
from starter.cli_errors import CliError, Reason
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.contract.names import mounted_content_id
from workflows.rules.eligibility import ClientFacts, CreatorFacts, CreatorKind

CLIENT_CHECKS = ["active", "qualification_passed", "corporate_verified", "brand_certified", "mount_allow_listed"]
EXAMPLE = "python -m starter"


def _parser(sub: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, epilog=f"example:\n  {EXAMPLE} {example}",
        parents=[global_flags(suppress=True)])
    return parser


# ------------------------------------------------------------------ directory and top-ups (the database)
def deposit(ledger: Any, client_id: str, amount_fen: int, deposit_id: str) -> tuple[dict[str, Any], bool]:
    """A top-up under the caller's key: (the answer, whether the key was used before). The same key again moves
    nothing and answers with the first top-up; the same key for another top-up is refused."""
    moved = ledger.deposit(deposit_id, client_id, amount_fen)
    if moved.mismatch:
        raise CliError("DepositRefused", f"deposit_id: {deposit_id} was used for another top-up",
                       [Reason(f"{deposit_id} was used for {moved.amount_fen} fen to {moved.credit_account}; this "
                               f"asks {amount_fen} fen to client {client_id}: use a new deposit id", "deposit_id")])
    return {"deposit_id": deposit_id, "client_id": client_id, "amount_fen": moved.amount_fen,
            "transfer_id": moved.id, "at": dump(moved.created_at if isinstance(moved.created_at, datetime)
                                                else datetime.fromisoformat(moved.created_at))}, moved.duplicate


def cmd_client(args: argparse.Namespace, out: Output) -> None:
    if args.deposit and not args.deposit_id:
        raise CliError("InvalidArguments", "--deposit-id is required with --deposit (the top-up's idempotency key)",
                       [Reason("required with --deposit", "--deposit-id")])
    facts = {check: check not in (args.fail or []) for check in CLIENT_CHECKS}
    s = store(args)
    s.directory.put_client(ClientFacts(client_id=args.client_id, penalty_restricted=args.penalty_restricted,
                                       **facts))
    shown: dict[str, Any] = {}
    if args.deposit:
        answer, again = deposit(s.ledger, args.client_id, args.deposit, args.deposit_id)
        shown["deposit"] = {**answer, "already_done": again}
        if again and not out.as_json:
            print("top-up already done (same key), first answer:", answer)
    out.show({**s.directory.client(args.client_id).model_dump(),
              "available_fen": s.ledger.balance(f"client:{args.client_id}:available").available_fen, **shown},
             f"client {args.client_id}")


def cmd_deposit(args: argparse.Namespace, out: Output) -> None:
    s = store(args)
    if not s.directory.client(args.client_id).known:
        raise CliError("NotFound", f"client {args.client_id} is not registered (python -m starter client)",
                       [Reason(f"{args.client_id} is not registered", "client_id")], exit_code=1)
    answer, again = deposit(s.ledger, args.client_id, args.amount_fen, args.deposit_id)
    (out.replayed if again else out.show)(answer)


def cmd_creator(args: argparse.Namespace, out: Output) -> None:
    s = store(args)
    if args.agency_id:
        s.directory.put_agency(args.agency_id, deposit_ever_deducted=args.agency_deposit_deducted)
    s.directory.put_creator(CreatorFacts(creator_id=args.creator_id, kind=CreatorKind(args.kind),
                                         agency_id=args.agency_id, onboarded=not args.not_onboarded,
                                         order_taking_closed=args.order_taking_closed, mount_barred=args.barred))
    out.show(s.directory.creator(args.creator_id), f"creator {args.creator_id}")


# ------------------------------------------------------------------ publish (the task id is the key)
async def cmd_publish(args: argparse.Namespace, out: Output) -> None:
    body = read_json(f"@{args.file}", "file")
    if not isinstance(body, dict):
        raise CliError("InvalidArguments", "file: a JSON object is required", [Reason("not an object", "file")])
    if args.task_id:
        body["task_id"] = args.task_id
    client = await connect(args)
    first = None
    if isinstance(body.get("task_id"), str):
        try:  # published before: the period it was published with, not a new "now" (issue 23)
            first = (await api.task_state(client, body["task_id"])).terms
        except RPCError:
            first = None
    if first is not None:
        body.setdefault("period_start_at", first.period_start_at and first.period_start_at.isoformat())
        body.setdefault("period_end_at", first.period_end_at and first.period_end_at.isoformat())
    start = args.start or now()
    body.setdefault("period_start_at", start.isoformat())
    body.setdefault("period_end_at", (start + timedelta(days=args.days)).isoformat())
    request = build(mt.PublishTaskRequest, argparse.Namespace(), body)
    # Published before: the workflow answers the same terms with the first publication and refuses others naming
    # each differing field (its PublicationRefused, printed as any refusal).
    result = await api.publish_task(client, request, task_queue(args))
    if first is not None:
        out.replayed(result)
    else:
        out.show(result, f"published task {result.task_id}")


# ------------------------------------------------------------------ the main site's reports
async def cmd_join(args: argparse.Namespace, out: Output) -> None:
    request = build(mt.JoinRequest, argparse.Namespace(), {"creator_id": args.creator_id})  # checked before sending
    out.show(await api.join(await connect(args), args.task_id, request.creator_id))


async def cmd_mount(args: argparse.Namespace, out: Output) -> None:
    request = build(mt.ReportMountRequest, argparse.Namespace(), {
        "content_id": args.content_id, "creator_id": args.creator_id, "mounted_at": (args.at or now()).isoformat()})
    out.show(await api.report_mount(await connect(args), args.task_id, request))


async def cmd_conversions(args: argparse.Namespace, out: Output) -> None:
    batch = build(mc.ConversionBatch, argparse.Namespace(), {
        "event_id": args.event_id, "content_id": args.content_id, "count": args.count,
        "occurred_at": (args.at or now()).isoformat(), "cheating": args.cheating})
    from activities.late_reports import LateReports

    late = await api.report_conversions(await connect(args), args.task_id, batch, LateReports(store(args).db))
    out.show({"late": late.note, **dump(late)} if late else {"sent": dump(batch)})


async def cmd_revoke(args: argparse.Namespace, out: Output) -> None:
    none = argparse.Namespace()
    if args.content_id:
        build(mt.RevokeContentRequest, none, {"creator_id": args.creator_id, "content_id": args.content_id})
        out.show(await api.revoke_content(await connect(args), args.task_id, args.creator_id, args.content_id))
    else:
        build(mt.RevokeAllRequest, none, {"creator_id": args.creator_id})
        out.show(await api.revoke_all(await connect(args), args.task_id, args.creator_id))


async def cmd_cancel(args: argparse.Namespace, out: Output) -> None:
    build(mt.CancelRequest, argparse.Namespace(), {"reason": args.reason, "requested_by": args.by})
    client = await connect(args)
    ended = await api.cancel(client, args.task_id, args.reason, args.by)
    # The answer is the task as the period ends: nothing is refunded yet. Where the money is, and when the rest
    # comes back (once every piece's window has closed, AM-13), is the money picture.
    from starter.cli_money import live_money, money_line

    money = live_money(args, args.task_id, (await api.task_state(client, args.task_id)).money)
    if out.as_json:
        out.show({"ended": ended, "money": money})
        return
    out.show(ended, f"task {args.task_id} cancelled")
    print(f"money: {money_line(money)} (once every piece has settled or closed)")


def cmd_late(args: argparse.Namespace, out: Output) -> None:
    from activities.late_reports import LateReports

    rows = LateReports(store(args).db).of_task(args.task_id)
    out.show(rows or f"no late conversion batch recorded for task {args.task_id}",
             f"conversion batches reported after their piece settled (R-2), task {args.task_id}")


# ------------------------------------------------------------------ an operator's actions on a piece
async def _content_signal(client: Client, args: argparse.Namespace, name: str, payload: Any) -> dict[str, Any]:
    await api.content_state(client, args.task_id, args.content_id)  # NotFound / closed: refused before sending
    await api.content_signal(client, args.task_id, args.content_id, name, payload)
    return {"sent": name, "to": mounted_content_id(args.task_id, args.content_id), **dump(payload)}


async def _first_resolution(client: Client, args: argparse.Namespace, request: mc.ResolveDisputeRequest
                            ) -> mc.DisputeResolution | None:
    """The answer the dispute was resolved with, when it was resolved by this very request."""
    try:
        state = await api.content_state(client, args.task_id, args.content_id)
    except RPCError:
        return None  # the workflow never existed (or its history is gone): the call's own refusal says which
    done = next((d for d in state.disputes if d.dispute_id == request.dispute_id and d.resolution_request == request),
                None)
    return done.resolution if done is not None else None


async def _resolved_before(client: Client, args: argparse.Namespace, request: mc.ResolveDisputeRequest) -> bool:
    """The dispute id is the key: resolved before by the same request is a replay; another request is refused by the
    workflow (ResolutionRefused naming the first resolution and each differing field)."""
    return await _first_resolution(client, args, request) is not None


async def _resolve(client: Client, args: argparse.Namespace, request: mc.ResolveDisputeRequest) -> Any:
    try:
        return await api.resolve_dispute(client, args.task_id, args.content_id, request)
    except api.Refused as refusal:
        # The piece settled since: its workflow can no longer answer, its last state still tells the first answer.
        if refusal.kind == "ResolutionRefused" and (first := await _first_resolution(client, args, request)):
            return first
        raise


PIECE = ("task_id", "content_id")
ACTIONS = [
    Action("void", "the platform voids an earlier conversion batch of a piece (R-1, before settlement)",
           f"{EXAMPLE} void demo-task-1 v-001 --event-id b-7 --reason 'cheating found by risk control'", PIECE,
           mc.VoidConversions, lambda c, a, r: _content_signal(c, a, "void_conversions", r)),
    Action("visibility-lost", "the creator deleted a piece or made it non-public (AM-16): counting stops then",
           f"{EXAMPLE} visibility-lost demo-task-1 v-001 --kind deleted --occurred-at 2026-12-05T09:00:00+08:00",
           PIECE, mc.VisibilityLost, lambda c, a, r: _content_signal(c, a, "report_visibility_lost", r)),
    Action("disposal", "the platform disposed of a piece for the creator's own violation (AM-16): no fee",
           f"{EXAMPLE} disposal demo-task-1 v-001 --reason taken_down --occurred-at now --note 'ticket 88'", PIECE,
           mc.PlatformDisposal, lambda c, a, r: _content_signal(c, a, "report_disposal", r)),
    Action("dispute", "the client or the creator disputes a piece's fee (AM-11), until its publicity window closes",
           f"{EXAMPLE} dispute demo-task-1 v-001 --raised-by client --party-id demo-client --reason 'bot traffic'",
           PIECE, mc.RaiseDisputeRequest, lambda c, a, r: api.raise_dispute(c, a.task_id, a.content_id, r)),
    Action("resolve", "an operator resolves a fee dispute with the amount settlement pays (AM-17); the dispute id "
           "is the key: the same resolution again answers with the first",
           f"{EXAMPLE} resolve demo-task-1 v-001 d-1 --amount-fen 900 --operator-id op-1 --note 'half were bots'",
           (*PIECE, "dispute_id"), mc.ResolveDisputeRequest, _resolve, replayed=_resolved_before),
]


def add_commands(sub: Any) -> None:
    p = _parser(sub, "client", "register or update a client in the directory, optionally top up",
                "client demo-client --deposit 1000000 --deposit-id dep-2026-12-01")
    p.add_argument("client_id")
    p.add_argument("--fail", action="append", choices=CLIENT_CHECKS,
                   help="mark an eligibility check as failed (repeatable); all pass by default")
    p.add_argument("--penalty-restricted", action="store_true", help="restricted by a violation penalty")
    p.add_argument("--deposit", type=positive_fen, default=0, metavar="FEN", help="top up the balance by FEN")
    p.add_argument("--deposit-id", "--key", dest="deposit_id",
                   help="the top-up's idempotency key (required with --deposit)")
    p.set_defaults(run=cmd_client)

    p = _parser(sub, "deposit", "top up a registered client's balance under the caller's deposit id (the key)",
                "deposit demo-client 500000 dep-2026-12-02")
    p.add_argument("client_id")
    p.add_argument("amount_fen", type=positive_fen)
    p.add_argument("deposit_id", help="the idempotency key (--key): the same id again moves nothing")
    p.set_defaults(run=cmd_deposit)

    p = _parser(sub, "creator", "register or update a creator (and its MCN agency)",
                "creator cr-demo --kind natural")
    p.add_argument("creator_id")
    p.add_argument("--kind", choices=[k.value for k in CreatorKind], default="natural")
    p.add_argument("--agency-id", help="MCN agency the creator is bound to")
    p.add_argument("--agency-deposit-deducted", action="store_true")
    p.add_argument("--not-onboarded", action="store_true")
    p.add_argument("--order-taking-closed", action="store_true")
    p.add_argument("--barred", action="store_true", help="barred from authorized-mount tasks")
    p.set_defaults(run=cmd_creator)

    p = _parser(sub, "publish", "publish a task from a JSON file (AM-1..AM-3; see examples/task.json); the task id is "
                "the key: publishing it again answers with the first publication, different terms are refused "
                "naming each differing field", "publish examples/task.json --start 2026-12-01T00:00:00+08:00")
    p.add_argument("file")
    p.add_argument("--task-id", help="override the file's task_id")
    p.add_argument("--start", type=instant, help="period start when the file sets none (default: now; a task "
                   "published before keeps its own)")
    p.add_argument("--days", type=count, default=30, help="task period length when the file sets none (default 30)")
    p.set_defaults(run=cmd_publish)

    p = _parser(sub, "join", "a creator joins a task (AM-4, AM-5)", "join demo-task-1 cr-demo")
    p.add_argument("task_id")
    p.add_argument("creator_id")
    p.set_defaults(run=cmd_join)

    p = _parser(sub, "mount", "report a mount, as the main site does (AM-6)", "mount demo-task-1 v-001 cr-demo")
    p.add_argument("task_id")
    p.add_argument("content_id")
    p.add_argument("creator_id")
    p.add_argument("--at", type=instant, help="mount instant, ISO-8601 with offset (default now)")
    p.set_defaults(run=cmd_mount)

    p = _parser(sub, "conversions", "report one conversion batch to a piece (R-1: the event id is the key)",
                "conversions demo-task-1 v-001 b-1 12 --at 2026-12-02T10:00:00+08:00")
    p.add_argument("task_id")
    p.add_argument("content_id")
    p.add_argument("event_id")
    p.add_argument("count", type=count)
    p.add_argument("--at", type=instant, help="when they occurred (default now)")
    p.add_argument("--cheating", action="store_true")
    p.set_defaults(run=cmd_conversions)

    p = _parser(sub, "revoke", "a creator revokes one piece, or all authorization when no content given (AM-14, "
                "AM-15)", "revoke demo-task-1 cr-demo v-001")
    p.add_argument("task_id")
    p.add_argument("creator_id")
    p.add_argument("content_id", nargs="?")
    p.set_defaults(run=cmd_revoke)

    p = _parser(sub, "cancel", "cancel a task (AM-7: the period ends now; unspent money is refunded once the pieces' "
                "windows close)", "cancel demo-task-1 --reason 'client asked' --by op-1")
    p.add_argument("task_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", required=True, help="operator id")
    p.set_defaults(run=cmd_cancel)

    for action in ACTIONS:
        action.add(sub)

    p = _parser(sub, "late", "conversion batches reported after their piece settled (R-2)", "late demo-task-1")
    p.add_argument("task_id")
    p.set_defaults(run=cmd_late)
