"""What every `python -m starter` command shares: the parser class (errors in the CLI's one shape), the global flags
(accepted before or after the command), output, instants, the connection, the ledger's database (opened from
activities.*, never from worker), and commands generated from a contract model's fields."""

from __future__ import annotations

import argparse
import json
import os
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, ValidationError
from temporalio.client import Client

from starter import client as api
from starter import config
from starter.cli_errors import CliError, Reason, invalid, usage
from workflows.rules.clock import BUSINESS_TZ


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument raises CliError (printed in the one error shape) instead of exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        raise usage(message, self.prog)


def global_flags(suppress: bool, init: bool = True) -> argparse.ArgumentParser:
    """The global flags; on each command with SUPPRESS defaults so that a flag given before the command stands."""
    default: Any = argparse.SUPPRESS if suppress else None
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                       help="machine-readable output: one JSON object (an error too) on stdout")
    if init:
        flags.add_argument("--init", action="store_true", default=argparse.SUPPRESS if suppress else False,
                           help="create the SQLite ledger if there is none where the configuration points")
    flags.add_argument("--address", default=default, help="Temporal frontend host:port (overrides the configuration)")
    flags.add_argument("--namespace", default=default, help="Temporal namespace (overrides the configuration)")
    flags.add_argument("--task-queue", default=default, help="task queue of new workflows (default: configuration)")
    return flags


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def show(self, value: Any, title: str = "") -> None:
        data = dump(value)
        if self.as_json:
            print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
            return
        if title:
            print(title)
        if isinstance(data, list) and data and isinstance(data[0], dict):
            self.table(data)
        elif isinstance(data, dict):
            width = max((len(k) for k in data), default=0)
            for key, item in data.items():
                shown = json.dumps(item, ensure_ascii=False, default=str) if isinstance(item, (dict, list)) else item
                print(f"  {key:<{width}}  {shown}")
        else:
            print(data)

    def replayed(self, value: Any) -> None:
        """The key was used before: the first answer, said so (exit 0)."""
        if self.as_json:
            print(json.dumps({"already_done": True, "first_answer": dump(value)}, ensure_ascii=False, indent=2,
                             default=str))
            return
        self.show(value, "already done (same key), first answer:")

    @staticmethod
    def table(rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
        print("  ".join(c.ljust(widths[c]) for c in columns))
        print("  ".join("-" * widths[c] for c in columns))
        for row in rows:
            print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def dump(value: Any) -> Any:
    """Plain JSON values; every instant in business time (+08:00) to the second, whatever the workflow kept."""
    if isinstance(value, BaseModel):
        return dump(value.model_dump(mode="python"))
    if isinstance(value, datetime):
        return value.astimezone(BUSINESS_TZ).isoformat(timespec="seconds") if value.tzinfo else value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [dump(v) for v in value]
    return value


def now() -> datetime:
    return datetime.now(BUSINESS_TZ).replace(microsecond=0)


def instant(text: str) -> datetime:
    """An argparse type: ISO-8601 with an offset, or `now`."""
    if text == "now":
        return now()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an instant; write it like 2026-12-01T10:00:00+08:00"
                                         ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; write it like 2026-12-01T10:00:00+08:00")
    return value


MAX_FEN = 10**15  # the contract's bound on an amount (workflows/contract/common.py Fen)


def fen(text: str) -> int:
    """An argparse type: an amount in integer fen, 0 or more (at most the contract's bound)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in integer fen") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: an amount is 0 fen or more")
    if value > MAX_FEN:
        raise argparse.ArgumentTypeError(f"{text} is above the largest amount, {MAX_FEN} fen")
    return value


def positive_fen(text: str) -> int:
    value = fen(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 moves nothing: an amount of 1 fen or more")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    if value > 10**12:
        raise argparse.ArgumentTypeError(f"{text} is above the largest count, 10^12")
    return value


async def connect(args: argparse.Namespace) -> Client:
    return await api.connect(getattr(args, "address", None), getattr(args, "namespace", None))


def task_queue(args: argparse.Namespace) -> str:
    return getattr(args, "task_queue", None) or config.task_queue(os.environ, config.read_state())


@dataclass
class Store:
    """The ledger's database and what the commands read or write in it (the worker's own adapters, opened here)."""

    db: Any
    ledger: Any
    directory: Any


def store(args: argparse.Namespace) -> Store:
    from activities.db import Database
    from activities.directory import Directory
    from activities.ledger import Ledger

    dsn = config.ledger_dsn(os.environ, config.read_state())
    config.require_ledger(dsn, getattr(args, "init", False))
    db = Database(dsn)
    return Store(db=db, ledger=Ledger(db), directory=Directory(db))


def read_json(text: str, what: str) -> Any:
    """JSON given inline or as @FILE; refused in the one shape when unreadable or malformed."""
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as err:
            raise CliError("InvalidArguments", f"{what}: cannot read {text[1:]}: {err.strerror}",
                           [Reason(f"cannot read {text[1:]}", what)]) from None
    try:
        return json.loads(source)
    except json.JSONDecodeError as err:
        raise CliError("InvalidArguments", f"{what}: not JSON ({err.msg} at line {err.lineno} column {err.colno})",
                       [Reason(f"not JSON: {err.msg}", what)]) from None


# ------------------------------------------------------------------ commands generated from a contract model
_SKIPPED = {"carried_state", "changes_due_at"}  # internal, or no longer accepted


def _core(annotation: Any) -> Any:
    """The type under Optional[...] / Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        else:
            return annotation


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _kind(annotation: Any) -> tuple[str, Any]:
    tp = _core(annotation)
    origin = typing.get_origin(tp)
    if origin is list:
        item = _core(typing.get_args(tp)[0])
        return ("json-list" if _is_model(item) else "list"), item
    if _is_model(tp):
        return "model", tp
    if tp is bool:
        return "bool", tp
    if tp is int:
        return "int", tp
    if tp is AwareDatetime or (isinstance(tp, type) and issubclass(tp, datetime)):
        return "instant", tp
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "choice", [e.value for e in tp]
    if origin is Literal:
        return "choice", list(typing.get_args(tp))
    return "text", tp


def add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel], skip: tuple[str, ...] = (),
                    prefix: str = "") -> None:
    """One flag per field (--field-name; nested models flattened as --parent-child; lists of models as JSON).
    No flag is required by argparse: the contract model checks the request, and names every missing field."""
    for name, info in model.model_fields.items():
        if name in _SKIPPED or name in skip:
            continue
        kind, detail = _kind(info.annotation)
        dest, flag = f"f_{prefix}{name}", "--" + f"{prefix}{name}".replace("__", "-").replace("_", "-")
        if kind == "model":
            add_model_flags(parser, detail, prefix=f"{prefix}{name}__")
            continue
        words = [info.description or ""]
        if kind == "choice":
            words.append("one of " + ", ".join(str(c) for c in detail))
        if kind == "instant":
            words.append("ISO-8601 with offset, or 'now'")
        if name.endswith("_fen"):
            words.append("integer fen")
        if kind == "json-list":
            words.append(f"JSON list of {detail.__name__} objects, or @FILE")
        if info.is_required():
            words.append("required")
        text = "; ".join(w for w in words if w).replace("%", "%%")
        if kind == "bool":
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif kind == "list":
            parser.add_argument(flag, dest=dest, action="append", metavar="VALUE", help=text + " (repeatable)")
        else:
            parser.add_argument(flag, dest=dest, metavar=name.upper(), help=text)


def _value(kind: str, raw: Any, field_path: str) -> Any:
    if kind == "int" and isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            return raw  # the model refuses it, naming the field
    if kind == "instant" and raw == "now":
        return now().isoformat()
    if kind == "json-list" and isinstance(raw, str):
        return read_json(raw, field_path)
    return raw


def model_body(model: type[BaseModel], args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        kind, detail = _kind(info.annotation)
        if kind == "model":
            inner = model_body(detail, args, f"{prefix}{name}__")
            if inner:
                body[name] = inner
            continue
        raw = getattr(args, f"f_{prefix}{name}", None)
        if raw is not None:
            body[name] = _value(kind, raw, (prefix + name).replace("__", "."))
    return body


def build(model: type[BaseModel], args: argparse.Namespace, fixed: dict[str, Any] | None = None) -> Any:
    """The request from --body (JSON or @FILE), then the flags, then the positional ids; checked by the model."""
    body: dict[str, Any] = {}
    if getattr(args, "body", None):
        given = read_json(args.body, "--body")
        if not isinstance(given, dict):
            raise CliError("InvalidArguments", "--body: a JSON object is required", [Reason("not an object", "--body")])
        body.update(given)
    body.update(model_body(model, args))
    body.update(fixed or {})
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise invalid(err) from None


Run = Callable[[Client, argparse.Namespace, Any], Awaitable[Any]]
Replayed = Callable[[Client, argparse.Namespace, Any], Awaitable[bool]]


@dataclass
class Action:
    """One operator action on a workflow: `python -m starter NAME IDS... --flags`, sending `model` through `call`.
    `replayed`, for a money action, tells whether the request's key was used before (then the answer is the
    first one, said so)."""

    name: str
    help: str
    example: str
    ids: tuple[str, ...]
    model: type[BaseModel]
    call: Run
    replayed: Replayed | None = None
    skip: tuple[str, ...] = ()
    # More flags than the model's (e.g. a shorthand) and the fields they give.
    extra_flags: Callable[[argparse.ArgumentParser], None] | None = None
    extra_body: Callable[[argparse.Namespace], dict[str, Any]] | None = None

    def add(self, sub: Any) -> None:
        p = sub.add_parser(self.name, help=self.help.replace("%", "%%"), description=self.help,
                           epilog=f"example:\n  {self.example}", parents=[global_flags(suppress=True)])
        for name in self.ids:
            p.add_argument(name, help=name.replace("_", " "))
        fields = set(self.model.model_fields)
        add_model_flags(p, self.model, skip=tuple(n for n in self.ids if n in fields) + self.skip)
        p.add_argument("--body", metavar="JSON", help=f"the whole {self.model.__name__} as JSON (or @FILE); flags "
                       "given as well override its fields")
        if self.extra_flags is not None:
            self.extra_flags(p)
        p.set_defaults(run=self.run)

    async def run(self, args: argparse.Namespace, out: Output) -> None:
        fields = set(self.model.model_fields)
        fixed = {n: getattr(args, n) for n in self.ids if n in fields}
        if self.extra_body is not None:
            fixed.update(self.extra_body(args))
        request = build(self.model, args, fixed)
        client = await connect(args)
        again = self.replayed is not None and await self.replayed(client, args, request)
        answer = await self.call(client, args, request)
        (out.replayed if again else out.show)(answer)
