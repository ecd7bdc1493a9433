"""`python -m starter penalty ...`: penalty notices and their appeals on ViolationCaseWorkflow (AM-18..AM-22)."""

from __future__ import annotations

import argparse
from typing import Any

from temporalio.client import Client

from starter import client as api
from starter import violations
from starter.cli_common import Action, task_queue
from starter.cli_errors import CliError, Reason
from workflows.contract import violation_case as vc
from workflows.contract.names import violation_case_id
from workflows.rules.penalties import PenaltyKind

EXAMPLE = "python -m starter"


def penalty_shorthand(text: str) -> dict[str, Any]:
    """KIND[:field=value,...], e.g. freeze_fees:amount_fen=5000,deduct_when_final=true."""
    kind, _, rest = text.partition(":")
    if kind not in {k.value for k in PenaltyKind}:
        raise CliError("InvalidArguments", f"--penalty: unknown kind {kind!r}",
                       [Reason(f"one of {', '.join(k.value for k in PenaltyKind)}", "--penalty")])
    penalty: dict[str, Any] = {"kind": kind}
    for item in filter(None, rest.split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise CliError("InvalidArguments", f"--penalty: {item!r} is not field=value",
                           [Reason(f"{item!r} is not field=value", "--penalty")])
        penalty[name] = (int(value) if value.lstrip("-").isdigit() and name in ("amount_fen", "points")
                         else {"true": True, "false": False}.get(value, value))
    return penalty


def _penalty_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--penalty", action="append", metavar="KIND[:FIELD=VALUE,...]",
                        help="a penalty (repeatable), e.g. freeze_fees:amount_fen=5000 or "
                        "close_order_taking:until_at=2027-01-01T00:00:00+08:00; or --penalties JSON")


def _penalty_body(args: argparse.Namespace) -> dict[str, Any]:
    return {"penalties": [penalty_shorthand(p) for p in args.penalty]} if args.penalty else {}


async def _issued_before(client: Client, args: argparse.Namespace, notice: vc.ViolationCaseInput) -> bool:
    """The case id is the key: a case that exists already answers with its state, whatever this notice says."""
    return await api.workflow_status(client, violation_case_id(notice.case_id)) is not None


async def _issue(client: Client, args: argparse.Namespace, notice: vc.ViolationCaseInput) -> vc.ViolationCaseView:
    await violations.issue_notice(client, notice, task_queue(args))
    return await violations.case_state(client, notice.case_id)


CASE = ("case_id",)
ACTIONS = [
    Action("penalty-issue", "issue a penalty notice (AM-18, AM-19): every penalty acts at once; the case id is the "
           "key: issuing it again starts nothing and answers with the case",
           f"{EXAMPLE} penalty-issue case-7 --party-kind creator --party-id cr-demo --notice-at now --violation "
           "'faked conversions on v-001' --issued-by op-1 --penalty freeze_fees:amount_fen=500",
           CASE, vc.ViolationCaseInput, _issue, replayed=_issued_before, extra_flags=_penalty_flags,
           extra_body=_penalty_body),
    Action("penalty-appeal", "the penalized party appeals within 7 days of the notice (AM-20)",
           f"{EXAMPLE} penalty-appeal case-7 --party-id cr-demo --reason 'the traffic was real'", CASE,
           vc.AppealRequest, lambda c, a, r: violations.appeal(c, a.case_id, r)),
    Action("penalty-decide", "an operator decides an appeal (AM-21): upheld withdraws every penalty, rejected makes "
           "them final (AM-22)",
           f"{EXAMPLE} penalty-decide case-7 --decision upheld --operator-id op-2 --note 'logs show real users'",
           CASE, vc.DecideAppealRequest, lambda c, a, r: violations.decide_appeal(c, a.case_id, r)),
    Action("penalty-mark-complex", "an operator marks an appealed case complex: the answer may take longer (AM-21)",
           f"{EXAMPLE} penalty-mark-complex case-7 --operator-id op-2 --note 'needs the risk team'",
           CASE, vc.MarkComplexRequest, lambda c, a, r: violations.mark_complex(c, a.case_id, r)),
    Action("penalty-lift-freeze", "an operator lifts a standing freeze of a case with a reason (AM-22)",
           f"{EXAMPLE} penalty-lift-freeze case-7 --penalty-id p1 --operator-id op-2 --reason 'settled offline'",
           CASE, vc.LiftFreezeRequest, lambda c, a, r: violations.lift_freeze(c, a.case_id, r)),
]


def add_commands(sub: Any) -> None:
    for action in ACTIONS:
        action.add(sub)
