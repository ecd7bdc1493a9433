"""`python -m starter`: the operator's and integrator's command line.

Talks to Temporal and reads or writes the directory and ledger database directly, the same ones the worker uses:
from anywhere in the checkout it finds the running `scripts/run.sh` (its server, ledger, payload keys and task
queue, from the state file .data/run.json); the Temporal CLI's connection configuration (a temporal.toml profile,
TEMPORAL_PROFILE, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*; starter/connection.py),
TEMPORAL_TASK_QUEUE, LEDGER_DSN, PAYLOAD_KEYS and PAYLOAD_KEYS_FILE override it (starter/config.py). A ledger command refuses to create a new SQLite
ledger unless given --init. `codec-server` serves the payload codec to the Temporal UI.
Every command has --help; --json prints machine-readable output; a refusal exits with code 2 and its reasons.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter import client as api
from starter import codec, config, connection
from starter.codec_auth import CodecAuthError
from workflows.contract import mount_task as mt
from workflows.contract import mounted_content as mc
from workflows.rules.clock import BUSINESS_TZ
from workflows.rules.eligibility import ClientFacts, CreatorFacts, CreatorKind

CLIENT_CHECKS = ["active", "qualification_passed", "corporate_verified", "brand_certified", "mount_allow_listed"]


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def show(self, value: Any, title: str = "") -> None:
        data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        if self.as_json:
            print(json.dumps(data, ensure_ascii=False, indent=2))
            return
        if title:
            print(title)
        if isinstance(data, list) and data and isinstance(data[0], dict):
            self.table(data)
        elif isinstance(data, dict):
            width = max((len(k) for k in data), default=0)
            for key, item in data.items():
                shown = json.dumps(item, ensure_ascii=False) if isinstance(item, (dict, list)) else item
                print(f"  {key:<{width}}  {shown}")
        else:
            print(data)

    @staticmethod
    def table(rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
        print("  ".join(c.ljust(widths[c]) for c in columns))
        print("  ".join("-" * widths[c] for c in columns))
        for row in rows:
            print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; write it like 2026-12-01T10:00:00+08:00")
    return value


def now() -> datetime:
    return datetime.now(BUSINESS_TZ).replace(microsecond=0)


def adapters(args: argparse.Namespace) -> Any:
    from worker import Adapters  # the database layer is only needed by directory and ledger commands

    dsn = config.ledger_dsn(os.environ, config.read_state())
    config.require_ledger(dsn, args.init)
    return Adapters.open(dsn)


async def connect() -> Client:
    return await api.connect()


def task_queue() -> str:
    return config.task_queue(os.environ, config.read_state())


# ------------------------------------------------------------------ directory and ledger (database)
def cmd_client(args: argparse.Namespace, out: Output) -> None:
    facts = {check: check not in (args.fail or []) for check in CLIENT_CHECKS}
    a = adapters(args)
    a.directory.put_client(ClientFacts(client_id=args.client_id, penalty_restricted=args.penalty_restricted,
                                       **facts))
    if args.deposit:
        a.ledger.deposit(args.deposit_id or f"cli-{args.client_id}-{args.deposit}", args.client_id, args.deposit)
    out.show({**a.directory.client(args.client_id).model_dump(),
              "available_fen": a.ledger.balance(f"client:{args.client_id}:available").available_fen},
             f"client {args.client_id}")


def cmd_creator(args: argparse.Namespace, out: Output) -> None:
    a = adapters(args)
    if args.agency_id:
        a.directory.put_agency(args.agency_id, deposit_ever_deducted=args.agency_deposit_deducted)
    a.directory.put_creator(CreatorFacts(creator_id=args.creator_id, kind=CreatorKind(args.kind),
                                         agency_id=args.agency_id, onboarded=not args.not_onboarded,
                                         order_taking_closed=args.order_taking_closed, mount_barred=args.barred))
    out.show(a.directory.creator(args.creator_id), f"creator {args.creator_id}")


def cmd_ledger(args: argparse.Namespace, out: Output) -> None:
    a = adapters(args)
    postings = a.ledger.transfers(business_key_prefix=None, account_prefix=f"task:{args.task_id}:")
    rows = [{"id": t.id[:8], "key": t.business_key, "debit": t.debit_account, "credit": t.credit_account,
             "amount_fen": t.amount_fen, "kind": t.kind, "status": t.status} for t in postings]
    if out.as_json:
        out.show({"postings": rows, "money": a.ledger.task_money(args.task_id),
                  "conservation_total": a.ledger.conservation_total()})
        return
    out.show(rows or "no postings", f"postings of task {args.task_id}")
    out.show(a.ledger.task_money(args.task_id), "money")
    print(f"ledger conservation total (must be 0): {a.ledger.conservation_total()}")


def cmd_platform(args: argparse.Namespace, out: Output) -> None:
    from activities.xg_ledger import platform_position
    out.show(platform_position(adapters(args).ledger), "the platform's net position (R-14: may be negative)")


def cmd_balance(args: argparse.Namespace, out: Output) -> None:
    a = adapters(args)
    rows = [{"account": b.name, "balance_fen": b.balance_fen, "available_fen": b.available_fen}
            for b in a.ledger.accounts(args.prefix)]
    out.show(rows or f"no account starts with {args.prefix!r}")


# ------------------------------------------------------------------ workflows (Temporal)
async def cmd_publish(args: argparse.Namespace, out: Output) -> None:
    body = json.loads(Path(args.file).read_text(encoding="utf-8"))
    if args.task_id:
        body["task_id"] = args.task_id
    start = now()
    body.setdefault("period_start_at", start.isoformat())
    body.setdefault("period_end_at", (start + timedelta(days=args.days)).isoformat())
    request = mt.PublishTaskRequest.model_validate(body)
    result = await api.publish_task(await connect(), request, task_queue())
    out.show(result, f"published task {result.task_id}")


async def cmd_join(args: argparse.Namespace, out: Output) -> None:
    out.show(await api.join(await connect(), args.task_id, args.creator_id))


async def cmd_mount(args: argparse.Namespace, out: Output) -> None:
    request = mt.ReportMountRequest(content_id=args.content_id, creator_id=args.creator_id,
                                    mounted_at=args.at or now())
    out.show(await api.report_mount(await connect(), args.task_id, request))


async def cmd_conversions(args: argparse.Namespace, out: Output) -> None:
    batch = mc.ConversionBatch(event_id=args.event_id, content_id=args.content_id, count=args.count,
                               occurred_at=args.at or now(), cheating=args.cheating)
    from starter.dispute_commands import late_log

    late = await api.report_conversions(await connect(), args.task_id, batch, late_log(args))
    out.show({"late": late.note, **late.model_dump(mode="json")} if late else {"sent": batch.model_dump(mode="json")})


async def cmd_revoke(args: argparse.Namespace, out: Output) -> None:
    client = await connect()
    if args.content_id:
        out.show(await api.revoke_content(client, args.task_id, args.creator_id, args.content_id))
    else:
        out.show(await api.revoke_all(client, args.task_id, args.creator_id))


async def cmd_cancel(args: argparse.Namespace, out: Output) -> None:
    out.show(await api.cancel(await connect(), args.task_id, args.reason, args.by))


async def cmd_state(args: argparse.Namespace, out: Output) -> None:
    client = await connect()
    if args.content_id:
        out.show(await api.content_state(client, args.task_id, args.content_id))
        return
    state = await api.task_state(client, args.task_id)
    if out.as_json:
        out.show(state)
        return
    summary = state.model_dump(mode="json", exclude={"creators", "pieces", "request", "publication"})
    out.show(summary, f"task {state.task_id}")
    if state.pieces:
        out.show([{"content_id": p.content_id, "creator_id": p.creator_id, "mounted_at": p.mounted_at.isoformat(),
                   "status": p.status, "fee_fen": p.fee_fen} for p in state.pieces.values()], "pieces")


def cmd_pieces(args: argparse.Namespace, out: Output) -> None:
    """A task's pieces, one page, from the register in the ledger's database (a task keeps only counts)."""
    from activities.task_register import TaskRegister

    page = TaskRegister(adapters(args).db).pieces_page(args.task_id, args.after, args.limit)
    rows = [{"seq": r.seq, "content_id": r.piece.content_id, "creator_id": r.piece.creator_id,
             "mounted_at": r.piece.mounted_at.isoformat(), "status": r.piece.status, "fee_fen": r.piece.fee_fen}
            for r in page]
    out.show({"task_id": args.task_id, "pieces": rows,
              "next_after": page[-1].seq if len(page) == args.limit else None}, f"pieces of task {args.task_id}")


# ------------------------------------------------------------------ payload codec (PR-6)
def cmd_codec_server(args: argparse.Namespace, out: Output) -> None:
    from starter.client import ledger_subject_keys
    from starter.codec_auth import CodecAuth, create_token_file
    from starter.codec_server import start_in_thread
    from telemetry import configure_logging

    configure_logging()  # the audit lines (logger codec.audit): JSON on stderr unless it is a terminal
    keys = codec.load_keys(config.payload_key_env(os.environ, config.read_state()), required=True)
    if args.create_token_file:
        create_token_file(Path(args.token_file or os.environ.get("CODEC_TOKEN_FILE") or ""))
    auth = CodecAuth.from_env(token_file=args.token_file, token_in_path=args.token_in_path)
    server = start_in_thread(keys, args.port, args.host, args.origin or codec_server_origins(), auth=auth,
                             subject_keys=lambda: ledger_subject_keys(keys))
    callers = [f"JWTs of {auth.jwt_policy.issuer} for {auth.jwt_policy.audience}"] if auth.jwt_policy else []
    callers += ["the static token" + (" (also in the path /local/<token>)" if auth.token_in_path else "")
                ] if auth.static_tokens else []
    print(f"codec server on {server.url} (POST /encode, /decode; bearer token: {' or '.join(callers)}) with key "
          f"ids {', '.join(keys.keys)} from {keys.source}; CORS for {', '.join(sorted(server.origins))}. Point the "
          f"UI at it: temporal server start-dev --ui-codec-endpoint {server.url}, or TEMPORAL_CODEC_ENDPOINT. "
          "Ctrl-C stops.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


def codec_server_origins() -> list[str]:
    from starter.codec_server import DEFAULT_ORIGINS

    listed = os.environ.get("PAYLOAD_CODEC_ORIGINS", "")
    return [o.strip() for o in listed.split(",") if o.strip()] or DEFAULT_ORIGINS


def cmd_payload_key(args: argparse.Namespace, out: Output) -> None:
    if args.init:
        created = codec.create_key_file(Path(args.init), args.id or "k1")
        print(f"{'created' if created else 'kept the existing'} payload key file {args.init}")
        return
    print(codec.new_key_entry(args.id))


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m starter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--init", action="store_true",
                        help="create the SQLite ledger if there is none where the configuration points")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("client", help="register or update a client in the directory, optionally top up")
    p.add_argument("client_id")
    p.add_argument("--fail", action="append", choices=CLIENT_CHECKS,
                   help="mark an eligibility check as failed (repeatable); all pass by default")
    p.add_argument("--penalty-restricted", action="store_true", help="restricted by a violation penalty")
    p.add_argument("--deposit", type=int, default=0, metavar="FEN", help="top up the balance by FEN")
    p.add_argument("--deposit-id", help="idempotency id of the top-up (default derived from client and amount)")
    p.set_defaults(run=cmd_client)

    p = sub.add_parser("creator", help="register or update a creator (and its MCN agency)")
    p.add_argument("creator_id")
    p.add_argument("--kind", choices=[k.value for k in CreatorKind], default="natural")
    p.add_argument("--agency-id", help="MCN agency the creator is bound to")
    p.add_argument("--agency-deposit-deducted", action="store_true")
    p.add_argument("--not-onboarded", action="store_true")
    p.add_argument("--order-taking-closed", action="store_true")
    p.add_argument("--barred", action="store_true", help="barred from authorized-mount tasks")
    p.set_defaults(run=cmd_creator)

    p = sub.add_parser("publish", help="publish a task from a JSON file (see examples/task.json)")
    p.add_argument("file")
    p.add_argument("--task-id", help="override the file's task_id")
    p.add_argument("--days", type=int, default=30, help="task period length when the file sets none (default 30)")
    p.set_defaults(run=cmd_publish)

    p = sub.add_parser("join", help="a creator joins a task")
    p.add_argument("task_id")
    p.add_argument("creator_id")
    p.set_defaults(run=cmd_join)

    p = sub.add_parser("mount", help="report a mount (as the main site does)")
    p.add_argument("task_id")
    p.add_argument("content_id")
    p.add_argument("creator_id")
    p.add_argument("--at", type=instant, help="mount instant, ISO-8601 with offset (default now)")
    p.set_defaults(run=cmd_mount)

    p = sub.add_parser("conversions", help="report one conversion batch to a piece")
    p.add_argument("task_id")
    p.add_argument("content_id")
    p.add_argument("event_id")
    p.add_argument("count", type=int)
    p.add_argument("--at", type=instant, help="when they occurred (default now)")
    p.add_argument("--cheating", action="store_true")
    p.set_defaults(run=cmd_conversions)

    p = sub.add_parser("revoke", help="a creator revokes one piece, or all authorization when no content given")
    p.add_argument("task_id")
    p.add_argument("creator_id")
    p.add_argument("content_id", nargs="?")
    p.set_defaults(run=cmd_revoke)

    p = sub.add_parser("cancel", help="cancel a task (the period ends now; unspent money is refunded)")
    p.add_argument("task_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", required=True, help="operator id")
    p.set_defaults(run=cmd_cancel)

    p = sub.add_parser("state", help="show a task's state, or one piece's")
    p.add_argument("task_id")
    p.add_argument("content_id", nargs="?")
    p.set_defaults(run=cmd_state)

    p = sub.add_parser("pieces", help="a task's pieces page by page, from the register in the ledger's database")
    p.add_argument("task_id")
    p.add_argument("--after", type=int, default=0, help="the last seq of the previous page (next_after)")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(run=cmd_pieces)

    p = sub.add_parser("ledger", help="a task's postings, money summary and the conservation check")
    p.add_argument("task_id")
    p.set_defaults(run=cmd_ledger)

    p = sub.add_parser("platform", help="the platform's net position: revenue in, provider fees, damages (R-14)")
    p.set_defaults(run=cmd_platform)

    p = sub.add_parser("balances", help="balances of accounts whose name starts with PREFIX")
    p.add_argument("prefix", nargs="?", default="")
    p.set_defaults(run=cmd_balance)

    from starter.dispute_commands import add_commands
    add_commands(sub)

    p = sub.add_parser("codec-server", help="serve the payload codec to the Temporal UI (PR-6; needs the keys)")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    p.add_argument("--origin", action="append", help="a UI origin allowed by CORS (repeatable; default: "
                   "PAYLOAD_CODEC_ORIGINS, else http://localhost:8233 and :8080 and their 127.0.0.1 forms)")
    p.add_argument("--token-file", help="a file holding the static bearer token (default: CODEC_TOKEN_FILE); JWTs: "
                   "CODEC_JWKS_URL or CODEC_JWT_PUBLIC_KEY_FILE, CODEC_JWT_ISSUER, CODEC_JWT_AUDIENCE")
    p.add_argument("--create-token-file", action="store_true", help="write a random token there first unless the "
                   "file exists (mode 0600)")
    p.add_argument("--token-in-path", action="store_true", help="also take the static token as /local/<token>/... "
                   "in the URL, for a UI that cannot send a header; loopback only (README)")
    p.set_defaults(run=cmd_codec_server)

    p = sub.add_parser("payload-key", help="print a new payload key entry ID:BASE64 for PAYLOAD_KEYS (rotation: "
                       "put it first, keep the old ones)")
    p.add_argument("--id", help="key id (default k<UTC timestamp>)")
    p.add_argument("--init", metavar="FILE", help="write a key file FILE unless it exists (compose's first run)")
    p.set_defaults(run=cmd_payload_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(args.json)
    run: Callable[[argparse.Namespace, Output], Awaitable[None] | None] = args.run
    try:
        pending = run(args, out)
        if pending is not None:
            asyncio.run(pending)
    except api.Refused as refusal:
        print(f"refused ({refusal.kind}):", file=sys.stderr)
        for reason in refusal.reasons:
            print(f"  - {reason}", file=sys.stderr)
        return 2
    except ValidationError as err:
        print(f"invalid input: {err}", file=sys.stderr)
        return 2
    except connection.ConnectionConfigError as err:
        print(str(err), file=sys.stderr)
        return 2
    except connection.ConnectionFailed as err:
        print(str(err), file=sys.stderr)
        return 1
    except config.LedgerMissing as err:
        print(f"ledger: {err}", file=sys.stderr)
        return 2
    except codec.PayloadKeyError as err:
        print(f"payload keys: {err}", file=sys.stderr)
        return 2
    except CodecAuthError as err:
        print(f"codec server: {err}", file=sys.stderr)
        return 2
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RPCError as err:
        hint = ""
        if err.status is RPCStatusCode.UNAVAILABLE:
            hint = f" (is the server running at {connection.for_client().describe()}?)"
        print(f"Temporal: {err.message}{hint}", file=sys.stderr)
        return 1
    return 0


def exit_now(code: int) -> None:
    """Exit without interpreter finalization: the Temporal client's native runtime can abort the process at
    finalization (PyGILState_Release, exit 134) after all work is done, which would hide the real exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
