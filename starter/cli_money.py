"""`python -m starter state | ledger | pieces | balances | platform`: what any workflow holds and where its money is.

`state` and `ledger` take an id of any kind: a mount task, a piece (task + content id), a Xingguang task or piece
(task + piece id), a violation case, an account, a data request, an incident, or a workflow id as Temporal shows it
(`xg-task:xg-1`). Which kind an id is, is found by asking which workflow exists (or --kind says it)."""

from __future__ import annotations

import argparse
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter import client as api
from starter import privacy, violations
from starter import xingguang as xgapi
from starter.cli_common import Output, connect, count, dump, global_flags, now, store
from starter.cli_errors import CliError, Reason
from workflows.contract import names
from workflows.contract.money import TaskMoney
from workflows.contract.xingguang_claims import XingguangClaimsView

EXAMPLE = "python -m starter"
# kind -> (workflow id of an id, Temporal's prefix); pieces (content, xg-piece) take a second id.
SINGLE = {
    "task": names.mount_task_id, "xg-task": names.xingguang_task_id, "xg-claims": names.xingguang_claims_id,
    "case": names.violation_case_id, "account": names.account_id, "request": names.data_subject_request_id,
    "incident": names.security_incident_id,
}
PREFIXES = {"mount-task": "task", "mount-content": "content", "xg-task": "xg-task", "xg-claims": "xg-claims",
            "violation": "case", "account": "account", "dsr": "request", "incident": "incident"}
KINDS = [*SINGLE, "content", "xg-piece"]


def not_found(what: str, field: str = "id") -> CliError:
    return CliError("NotFound", f"{what} not found: no workflow of any kind has this id",
                    [Reason(f"{what} not found", field)], exit_code=1)


def workflow_of(kind: str, ident: str, second: str | None) -> str:
    if kind == "content":
        return names.mounted_content_id(ident, second or "")
    return names.xingguang_task_id(ident) if kind == "xg-piece" else SINGLE[kind](ident)


async def resolve(client: Client, args: argparse.Namespace) -> tuple[str, str, str | None]:
    """(kind, id, second id) of the command's arguments; NotFound when no such workflow exists."""
    ident, second = args.id, args.sub_id
    if ":" in ident and args.kind is None:
        prefix, _, rest = ident.partition(":")
        kind = PREFIXES.get(prefix)
        if kind is None:
            raise CliError("InvalidArguments", f"id: {ident} is not a workflow id of this project",
                           [Reason(f"prefix {prefix!r} is none of {', '.join(PREFIXES)}", "id")])
        if kind == "content":
            ident, _, second = rest.partition(":")
        else:
            ident = rest
        kinds = [kind]
    elif args.kind is not None:
        kinds = [args.kind]
    else:
        kinds = ["content", "xg-piece"] if second else list(SINGLE)
    found = [k for k in kinds if await api.workflow_status(client, workflow_of(k, ident, second)) is not None]
    if not found:
        raise not_found(f"{ident} {second}" if second else ident)
    if len(found) > 1 and not second:
        raise CliError("Ambiguous", f"id: {ident} names {len(found)} workflows; say which with --kind",
                       [Reason(f"a {k} exists with this id", "--kind") for k in found])
    return found[0], ident, second


async def state_of(client: Client, kind: str, ident: str, second: str | None) -> Any:
    if kind == "task":
        return await api.task_state(client, ident)
    if kind == "content":
        if not second:
            raise CliError("InvalidArguments", "content_id: required for a piece", [Reason("required", "content_id")])
        return await api.content_state(client, ident, second)
    if kind in ("xg-task", "xg-piece"):
        state = await xgapi.state(client, ident)
        if kind == "xg-task":
            return state
        if second not in state.pieces:
            raise CliError("NotFound", f"piece {second} not found in xg task {ident}",
                           [Reason(f"pieces are {', '.join(state.pieces) or 'none'}", "piece_id")], exit_code=1)
        return state.pieces[second]
    if kind == "xg-claims":
        return await client.get_workflow_handle(names.xingguang_claims_id(ident)).query(
            "state", result_type=XingguangClaimsView)
    if kind == "case":
        return await violations.case_state(client, ident)
    if kind == "account":
        return await privacy.account_state(client, ident)
    if kind == "request":
        return await privacy.request_state(client, ident)
    return await privacy.incident_state(client, ident)


async def cmd_state(args: argparse.Namespace, out: Output) -> None:
    client = await connect(args)
    kind, ident, second = await resolve(client, args)
    try:
        state = await state_of(client, kind, ident, second)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise not_found(f"{kind} {ident}" + (f" {second}" if second else "")) from None
        raise
    title = f"{kind} {ident}" + (f" {second}" if second else "")
    if kind == "task":
        state.money = live_money(args, ident, state.money)
    if out.as_json or not hasattr(state, "money"):
        out.show(state, title)
        return
    # People read the money picture and the progress as blocks of their own (a task's view has counts; `pieces
    # TASK` lists its pieces page by page).
    out.show(state.model_dump(exclude={"money", "progress", "pieces"} if kind == "xg-task" else {"money", "progress"}),
             title)
    out.show(state.money, "money (fen)")
    out.show(state.progress, "progress")


def live_money(args: argparse.Namespace, task_id: str, seen: TaskMoney) -> TaskMoney:
    """A task's money picture read from the ledger now: the task's own view has it as of its last look there
    (`as_of`), and what pieces accrued since is only in the ledger. Same names, same figures as `ledger TASK`."""
    try:
        figures = store(args).ledger.task_money(task_id)
    except Exception:
        return seen
    return seen.model_copy(update={**picture(figures), "as_of": now()})


def picture(figures: dict[str, Any]) -> dict[str, Any]:
    """The money picture's figures out of the ledger's `task_money` (which also has its budget counter)."""
    return {name: figures[name] for name in TaskMoney.model_fields if name in figures}


async def cmd_money(args: argparse.Namespace, out: Output) -> None:
    """The money picture of a task or a piece, in one line (with --json, the object `state` shows as `money`)."""
    client = await connect(args)
    kind, ident, second = await resolve(client, args)
    state = await state_of(client, kind, ident, second)
    money = getattr(state, "money", None)
    if money is None:
        raise CliError("InvalidArguments", f"id: a {kind} moves no money of its own; `ledger {ident}` shows its "
                       f"postings", [Reason(f"a {kind} has no money picture", "id")])
    if kind == "task":
        money = live_money(args, ident, money)
    if out.as_json:
        out.show(money)
        return
    print(f"{kind} {ident}" + (f" {second}" if second else "") + ": " + money_line(money))


def money_line(money: Any) -> str:
    """`frozen 550,000 · accrued 1,800 · ...` (fen), and from when the refund still to come goes back."""
    shown = dump(money)
    parts = [f"{name.removesuffix('_fen').replace('_', ' ')} {value:,}" for name, value in shown.items()
             if name.endswith("_fen")]
    line = "fen: " + " · ".join(parts)
    if shown.get("refund_to_come_fen") and shown.get("refund_expected_at"):
        line += f"; the refund to come not before {shown['refund_expected_at']}"
    return line


# ------------------------------------------------------------------ ledger (the database; Temporal only to tell kinds)
def _row(t: Any) -> dict[str, Any]:
    return {"id": t.id[:8], "key": t.business_key, "debit": t.debit_account, "credit": t.credit_account,
            "amount_fen": t.amount_fen, "kind": t.kind, "status": t.status}


def _keyed(ledger: Any, prefix: str, ident: str, position: int) -> list[Any]:
    return [t for t in ledger.transfers(business_key_prefix=prefix, limit=100_000)
            if t.business_key.split(":")[position:position + 1] == [ident]]


def ledger_view(ledger: Any, kind: str, ident: str, second: str | None) -> dict[str, Any] | None:
    """Postings and a money summary of the id, or None when the ledger has nothing of it."""
    if kind in ("task", "content"):
        postings = ledger.transfers(account_prefix=f"task:{ident}:", limit=100_000)
        if kind == "content":
            postings = [t for t in postings if second and f":{second}" in t.business_key]
        if not postings:
            return None
        figures = ledger.task_money(ident)  # the money picture under the names a task's `state` uses
        money = picture(figures)
        money["escrow_balance_fen"] = figures["escrow_balance_fen"]  # accrued + its platform fee + refund to come
        money["budget"] = {"budget_fen": figures["budget_fen"], "counted_fen": figures["spent_fen"],
                           "remaining_fen": figures["remaining_fen"], "used_up_at": figures["exhausted_at"]}
        return {"postings": postings, "money": money}
    if kind in ("xg-task", "xg-piece", "xg-claims"):
        postings = {t.id: t for t in ledger.transfers(account_prefix=f"xg_task:{ident}:", limit=100_000)}
        postings.update({t.id: t for t in _keyed(ledger, "xg:", ident, 2)})
        rows = sorted(postings.values(), key=lambda t: t.created_at)
        if kind == "xg-piece":
            rows = [t for t in rows if second and t.business_key.split(":")[3:4] == [second]]
        if not rows:
            return None
        escrow = ledger.balance(f"xg_task:{ident}:escrow")
        by_kind: dict[str, int] = {}
        for t in rows:  # e.g. freeze_fen, settle_fen, refund_fen, compensation_fen (the postings' kinds)
            name = f"{t.kind.removeprefix('xg_')}_fen"
            by_kind[name] = by_kind.get(name, 0) + t.amount_fen
        return {"postings": rows, "money": {"escrow_balance_fen": escrow.balance_fen, **by_kind}}
    if kind == "case":
        rows = _keyed(ledger, "penalty:", ident, 1)
        if not rows:
            return None
        by_kind = {}
        for t in rows:
            by_kind[f"{t.kind}_fen"] = by_kind.get(f"{t.kind}_fen", 0) + t.amount_fen
        return {"postings": rows, "money": by_kind}
    if kind == "account":
        balances = [b for party in ("client", "creator", "agency") for b in ledger.accounts(f"{party}:{ident}:")]
        if not balances:
            return None
        rows = [t for b in balances for t in ledger.transfers(account_prefix=b.name, limit=100_000)]
        return {"postings": sorted({t.id: t for t in rows}.values(), key=lambda t: t.created_at),
                "money": {b.name: {"balance_fen": b.balance_fen, "available_fen": b.available_fen}
                          for b in balances}}
    return None  # data requests and incidents move no money


async def _exists_anywhere(args: argparse.Namespace) -> tuple[str, str, str | None] | None:
    try:
        return await resolve(await connect(args), args)
    except CliError as err:
        if err.type == "NotFound":
            return None
        raise


def cmd_ledger(args: argparse.Namespace, out: Output) -> None:
    import asyncio

    s = store(args)
    candidates: list[tuple[str, str, str | None]] = []
    if args.kind is not None or ":" in args.id:
        candidates = [(args.kind or PREFIXES.get(args.id.partition(":")[0], "task"),
                       args.id.partition(":")[2] if ":" in args.id and args.kind is None else args.id, args.sub_id)]
        if candidates[0][0] == "content" and ":" in candidates[0][1]:
            task, _, content = candidates[0][1].partition(":")
            candidates = [("content", task, content)]
    else:
        kinds = ["content", "xg-piece"] if args.sub_id else ["task", "xg-task", "case", "account"]
        candidates = [(k, args.id, args.sub_id) for k in kinds]
    for kind, ident, second in candidates:
        view = ledger_view(s.ledger, kind, ident, second)
        if view is not None:
            break
    else:
        found = asyncio.run(_exists_anywhere(args))  # no money: is it a workflow at all?
        if found is None:
            raise not_found(args.id + (f" {args.sub_id}" if args.sub_id else ""))
        kind, ident, second = found
        view = {"postings": [], "money": {}}
    rows = [_row(t) for t in view["postings"]]
    total = s.ledger.conservation_total()
    name = f"{kind} {ident}" + (f" {second}" if second else "")
    if out.as_json:
        out.show({"kind": kind, "id": ident, "postings": rows, "money": view["money"], "conservation_total": total})
        return
    out.show(rows or "no postings", f"postings of {name}")
    out.show(view["money"] or "no money moves here", "money")
    print(f"ledger conservation total (must be 0): {total}")


def cmd_pieces(args: argparse.Namespace, out: Output) -> None:
    """A task's pieces, one page: a mount task's from the register in the ledger's database (a task keeps only
    counts); a Xingguang task's from its state. An id that is neither task is refused NotFound."""
    from activities.task_register import TaskRegister

    page = TaskRegister(store(args).db).pieces_page(args.task_id, args.after, args.limit)
    rows: list[dict[str, Any]] = [
        {"seq": r.seq, "content_id": r.piece.content_id, "creator_id": r.piece.creator_id,
         "mounted_at": dump(r.piece.mounted_at), "status": r.piece.status, "fee_fen": r.piece.fee_fen}
        for r in page]
    next_after = page[-1].seq if len(page) == args.limit else None
    if not rows and args.after == 0:
        import asyncio
        rows, next_after = asyncio.run(_xg_or_empty(args))
    out.show({"task_id": args.task_id, "pieces": rows, "next_after": next_after}, f"pieces of task {args.task_id}")


async def _xg_or_empty(args: argparse.Namespace) -> tuple[list[dict[str, Any]], int | None]:
    client = await connect(args)
    if await api.workflow_status(client, names.xingguang_task_id(args.task_id)) is not None:
        state = await xgapi.state(client, args.task_id)
        pieces = list(state.pieces.values())[: args.limit]
        return [{"piece_id": p.piece_id, "creator_id": p.creator_id, "content_id": p.content_id,
                 "stage": p.stage.value, "agreed_earnings_fen": p.agreed_earnings_fen,
                 "billable_events": p.billable_events, "billed_spend_fen": p.billed_spend_fen} for p in pieces], None
    if await api.workflow_status(client, names.mount_task_id(args.task_id)) is None:
        raise not_found(f"task {args.task_id}", "task_id")
    return [], None


def cmd_platform(args: argparse.Namespace, out: Output) -> None:
    from activities.xg_ledger import platform_position
    out.show(platform_position(store(args).ledger), "the platform's net position (R-14: may be negative)")


def cmd_balance(args: argparse.Namespace, out: Output) -> None:
    rows = [{"account": b.name, "balance_fen": b.balance_fen, "available_fen": b.available_fen}
            for b in store(args).ledger.accounts(args.prefix)]
    out.show(rows or f"no account starts with {args.prefix!r}")


def _positive(text: str) -> int:
    value = count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is not a page size: 1 or more")
    return value


def add_commands(sub: Any) -> None:
    for name, run, help in [
            ("state", cmd_state, "what a workflow holds now: any kind of id (see --kind), or a workflow id"),
            ("money", cmd_money, "the money picture of a task or a piece in one line: frozen, accrued, paid, "
                                 "platform fees, held, refunded, refund to come"),
            ("ledger", cmd_ledger, "the postings and money of any id, and the ledger's conservation check")]:
        p = sub.add_parser(name, help=help, description=help + ". " + (__doc__ or "").split("\n\n")[1],
                           parents=[global_flags(suppress=True)],
                           epilog=f"examples:\n  {EXAMPLE} {name} demo-task-1\n  {EXAMPLE} {name} demo-task-1 v-001"
                           f"\n  {EXAMPLE} {name} xg-1 p1 --kind xg-piece\n  {EXAMPLE} {name} violation:case-7")
        p.add_argument("id", help="the business id (task, case, account, request, incident) or a workflow id")
        p.add_argument("sub_id", nargs="?", help="a piece: its content id (mount task) or piece id (Xingguang)")
        p.add_argument("--kind", choices=KINDS, help="which kind the id is, when it names more than one")
        p.set_defaults(run=run)

    p = sub.add_parser("pieces", help="a task's pieces page by page (a mount task's from the register in the "
                       "ledger's database; a Xingguang task's from its state)",
                       parents=[global_flags(suppress=True)],
                       epilog=f"example:\n  {EXAMPLE} pieces demo-task-1 --after 100 --limit 50")
    p.add_argument("task_id")
    p.add_argument("--after", type=count, default=0, help="the last seq of the previous page (next_after)")
    p.add_argument("--limit", type=_positive, default=100)
    p.set_defaults(run=cmd_pieces)

    p = sub.add_parser("platform", help="the platform's net position: revenue in, provider fees, damages (R-14)",
                       parents=[global_flags(suppress=True)], epilog=f"example:\n  {EXAMPLE} platform")
    p.set_defaults(run=cmd_platform)

    p = sub.add_parser("balances", help="balances of accounts whose name starts with PREFIX",
                       parents=[global_flags(suppress=True)], epilog=f"example:\n  {EXAMPLE} balances client:demo-")
    p.add_argument("prefix", nargs="?", default="")
    p.set_defaults(run=cmd_balance)
