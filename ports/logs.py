"""Log lines with fields through the standard `logging` module, for workflow code (workflows/logs.py binds them to
the workflow's ids) and for activities (the ledger's money lines): one class both sides may import."""

from __future__ import annotations

import logging
from typing import Any

FIELDS = "xingtu_fields"  # the LogRecord attribute carrying a line's fields (telemetry.py renders them)
LOGGER = "xingtu.workflow"


class BoundLog:
    """A bound logger in the manner of structlog (`bind`, `info(event, **fields)`) writing through the standard
    `logging` module: the worker's structlog configuration (telemetry.py) renders the line with its fields; a
    process that configured nothing shows warnings only. (structlog's own loggers are not used inside the
    workflow sandbox.) Activities use it too (`BoundLog(name="xingtu.ledger")`)."""

    def __init__(self, fields: dict[str, Any] | None = None, silent: bool = False, name: str = LOGGER) -> None:
        self.fields, self.silent, self.name = fields or {}, silent, name

    def bind(self, **fields: Any) -> BoundLog:
        return BoundLog({**self.fields, **fields}, self.silent, self.name)

    def log(self, level: int, event: str, **fields: Any) -> None:
        if not self.silent:
            logging.getLogger(self.name).log(level, event, extra={FIELDS: {**self.fields, **fields}})

    def debug(self, event: str, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)
