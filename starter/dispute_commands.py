"""`python -m starter` commands for fee disputes (AM-11, AM-17) and late conversion batches (R-2).

A dispute on a settled piece is refused with the window's closing instant (exit code 2, kind DisputeRefused); a
batch for a settled piece is recorded as late in the ledger's database and answered "late: settled at ..."; a
piece that was never mounted is refused NotFound."""

from __future__ import annotations

import argparse
from typing import Any

from starter import client as api
from workflows.contract import mounted_content as mc


def _cli() -> Any:
    from starter import __main__ as cli  # the shared output, connection and database helpers
    return cli


def late_log(args: argparse.Namespace) -> Any:
    from activities.late_reports import LateReports
    return LateReports(_cli().adapters(args).db)


async def cmd_dispute(args: argparse.Namespace, out: Any) -> None:
    request = mc.RaiseDisputeRequest(raised_by=args.by, party_id=args.party, reason=args.reason)
    out.show(await api.raise_dispute(await _cli().connect(), args.task_id, args.content_id, request))


async def cmd_resolve(args: argparse.Namespace, out: Any) -> None:
    request = mc.ResolveDisputeRequest(dispute_id=args.dispute_id, operator_id=args.operator,
                                       amount_fen=args.amount_fen, note=args.note)
    out.show(await api.resolve_dispute(await _cli().connect(), args.task_id, args.content_id, request))


def cmd_late(args: argparse.Namespace, out: Any) -> None:
    rows = late_log(args).of_task(args.task_id)
    out.show(rows or f"no late conversion batch recorded for task {args.task_id}",
             f"conversion batches reported after their piece settled (R-2), task {args.task_id}")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("dispute", help="the client or the creator disputes a piece's fee (AM-11)")
    p.add_argument("task_id")
    p.add_argument("content_id")
    p.add_argument("--by", required=True, choices=["client", "creator"])
    p.add_argument("--party", required=True, help="the client id or the creator id")
    p.add_argument("--reason", required=True)
    p.set_defaults(run=cmd_dispute)

    p = sub.add_parser("resolve", help="an operator resolves a fee dispute with an amount (AM-17)")
    p.add_argument("task_id")
    p.add_argument("content_id")
    p.add_argument("dispute_id")
    p.add_argument("amount_fen", type=int)
    p.add_argument("--operator", required=True)
    p.add_argument("--note", required=True)
    p.set_defaults(run=cmd_resolve)

    p = sub.add_parser("late", help="conversion batches reported after their piece settled (R-2)")
    p.add_argument("task_id")
    p.set_defaults(run=cmd_late)
