"""The SDK's reading of a workflow class and an activity, in one place (issue 22: no private SDK API elsewhere).

temporalio (1.x) has no public API that reads a workflow class's name, argument types and handlers, nor an
activity's registered name, from the decorated class or function: the worker reads them through the private
`temporalio.workflow._Definition` and `temporalio.activity._Definition`. The schema generator (schemas.py), the
worker's activity replacement (worker.py) and the tests need the same facts, so these two functions are the only
users of those private classes; they copy what is needed into the project's own types, and an SDK upgrade that
changes the private classes breaks here and nowhere else. (Inside a running workflow the public
`workflow.get_signal_handler` / `workflow.get_update_handler` return the handler, but an async method comes back
wrapped in `(*args, **kwargs)`: its parameters cannot be read from it, so the converter's argument check uses
`handler_arg_types`.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from temporalio import activity, workflow

__all__ = ["Handler", "WorkflowDefinition", "activity_name", "handler_arg_types", "workflow_definition"]

HandlerKind = Literal["update", "signal", "query"]


@dataclass(frozen=True)
class Handler:
    """One named update, signal or query: its method, argument types (None: unknown, no type hints), result type
    (None for a signal) and its declared description."""

    kind: HandlerKind
    name: str
    fn: Callable[..., Any]
    arg_types: tuple[Any, ...] | None
    ret_type: Any
    description: str | None


@dataclass(frozen=True)
class WorkflowDefinition:
    """A workflow class as the worker registers it: its type name (None for a dynamic workflow), its run method's
    argument and result types, and its named handlers by kind. `dynamic`: the kinds that also have a dynamic
    handler (no name, so no contract)."""

    cls: type
    name: str | None
    run_fn: Callable[..., Any]
    arg_types: tuple[Any, ...] | None
    ret_type: Any
    updates: Mapping[str, Handler]
    signals: Mapping[str, Handler]
    queries: Mapping[str, Handler]
    dynamic: frozenset[HandlerKind]

    def handlers(self, kind: HandlerKind) -> Mapping[str, Handler]:
        return {"update": self.updates, "signal": self.signals, "query": self.queries}[kind]


def _handlers(kind: HandlerKind, by_name: Mapping[str | None, Any]) -> dict[str, Handler]:
    return {name: Handler(kind, name, handler.fn,
                          None if handler.arg_types is None else tuple(handler.arg_types),
                          getattr(handler, "ret_type", None), handler.description)
            for name, handler in by_name.items() if name}


def workflow_definition(cls: type) -> WorkflowDefinition:
    """The definition of a class decorated with `@workflow.defn` (ValueError if it is not one)."""
    defn = workflow._Definition.must_from_class(cls)  # private: see the module's docstring
    kinds: tuple[tuple[HandlerKind, Mapping[str | None, Any]], ...] = (
        ("update", defn.updates), ("signal", defn.signals), ("query", defn.queries))
    return WorkflowDefinition(
        cls=cls, name=defn.name, run_fn=defn.run_fn,
        arg_types=None if defn.arg_types is None else tuple(defn.arg_types), ret_type=defn.ret_type,
        updates=_handlers("update", defn.updates), signals=_handlers("signal", defn.signals),
        queries=_handlers("query", defn.queries),
        dynamic=frozenset(kind for kind, by_name in kinds if None in by_name))


def handler_arg_types(cls: type, kind: Literal["signal", "update"], name: str) -> tuple[Any, ...] | None:
    """The argument types of the workflow class's signal or update `name`; None when it has no handler of that name
    (a dynamic one has no types to check against) or its types are unknown. For every message a workflow receives
    (converter.MessageArguments): reads the SDK's definition without building a WorkflowDefinition."""
    defn = workflow._Definition.must_from_class(cls)  # private: see the module's docstring
    handler = (defn.signals if kind == "signal" else defn.updates).get(name)
    if handler is None or not handler.name or handler.arg_types is None:
        return None
    return tuple(handler.arg_types)


def activity_name(fn: Callable[..., Any]) -> str:
    """The name an `@activity.defn` function or method registers under (ValueError if it is not one)."""
    definition = activity._Definition.must_from_callable(fn)  # private: see the module's docstring
    if definition.name is None:
        raise ValueError(f"{fn!r} is a dynamic activity: it has no name")
    return definition.name
