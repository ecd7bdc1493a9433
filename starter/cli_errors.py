"""The CLI's one error shape: `<Type>: <message>` and one line per reason (the field it concerns first, where known),
or with --json one object on stdout `{"error": {"type", "message", "reasons": [{"field", "message"}]}}`.

Exit codes: 1 an id that is unknown or not running, or the server unreachable; 2 a refusal (a workflow's, or bad
arguments); 3 an unexpected fault (InternalError), which no expected input reaches."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

NOT_FOUND_TYPES = {"NotFound", "NotRunning", "Unreachable"}
# A workflow's reason names its field first ("amount_fen: ..."; "penalties[0].until_at: ..."); a prose reason
# ("creator nobody is not registered") has none.
_FIELD = re.compile(r"^([a-z_][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z_][a-z0-9_]*(?:\[\d+\])?)*|--[a-z0-9-]+): (.+)$",
                    re.DOTALL)


@dataclass
class Reason:
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message}

    def line(self) -> str:
        return f"  - {self.field}: {self.message}" if self.field else f"  - {self.message}"


def reason_of(text: str) -> Reason:
    matched = _FIELD.match(text)
    return Reason(matched.group(2), matched.group(1)) if matched else Reason(text)


@dataclass
class CliError(Exception):
    type: str
    message: str
    reasons: list[Reason] = field(default_factory=list)
    exit_code: int = 2

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message,
                          "reasons": [r.as_dict() for r in self.reasons]}}


def refusal(kind: str, reasons: list[str]) -> CliError:
    """A business refusal of a workflow (starter.client.Refused): NotFound/NotRunning exit 1, the others 2."""
    shaped = [reason_of(r) for r in reasons]
    message = shaped[0].message if len(shaped) == 1 else f"refused for {len(shaped)} reasons"
    if len(shaped) == 1 and shaped[0].field:
        message = f"{shaped[0].field}: {shaped[0].message}"
    return CliError(kind, message, shaped, 1 if kind in NOT_FOUND_TYPES else 2)


def invalid(error: ValidationError, prefix: str = "") -> CliError:
    """A pydantic ValidationError: one reason per error, with its field path and message (no URL, no input echo)."""
    reasons = []
    for item in error.errors(include_url=False):
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in item["loc"]).replace(".[", "[")
        message = str(item["msg"]).removeprefix("Value error, ")
        inner = reason_of(message)  # a model validator names its field itself ("changes: ...")
        if not path and inner.field:
            path, message = inner.field, inner.message
        reasons.append(Reason(message, f"{prefix}{path}" if path else (prefix.rstrip(".") or None)))
    noun = "problem" if len(reasons) == 1 else "problems"
    return CliError("InvalidRequest", f"the request has {len(reasons)} {noun}", reasons, 2)


def usage(message: str, prog: str) -> CliError:
    """An argparse error, one reason per missing argument or the bad one."""
    missing = re.match(r"the following arguments are required: (.+)$", message)
    if missing:
        names = [n.strip() for n in missing.group(1).split(",")]
        reasons = [Reason("required", n.split("/")[-1]) for n in names]
        return CliError("InvalidArguments", f"{prog}: missing {', '.join(names)}", reasons, 2)
    bad = re.match(r"argument ([^:]+): (.+)$", message, re.DOTALL)
    if bad:
        name = bad.group(1).split("/")[-1]
        return CliError("InvalidArguments", f"{prog}: argument {name} is invalid", [Reason(bad.group(2), name)], 2)
    return CliError("InvalidArguments", f"{prog}: {message}", [Reason(message)], 2)


def report(error: CliError, as_json: bool) -> int:
    if as_json:
        print(json.dumps(error.as_dict(), ensure_ascii=False))
    else:
        print(str(error), file=sys.stderr)
        for reason in error.reasons:
            if len(error.reasons) > 1 or reason.message not in error.message:
                print(reason.line(), file=sys.stderr)
    return error.exit_code
