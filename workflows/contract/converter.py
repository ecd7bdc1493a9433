"""The data converter of the contract: JSON through pydantic, with refusals a person can act on.

Temporal's pydantic converter reports a payload that does not fit its model as "Failed decoding arguments". This
one raises a non-retryable `ApplicationError` of type `InvalidPayload` whose message names every offending field
(and whose details list them), so that:
- an update with a bad payload is rejected with that message, and nothing changes;
- a signal with a bad payload is dropped (and logged) without failing the workflow task;
- an activity given a bad payload fails for good instead of retrying forever.

The SDK decodes a signal's or update's payloads against the handler's types only when their number matches; given
none or too many, it would call the handler with missing or extra (untyped) arguments, and a signal handler's
TypeError fails the workflow task on every retry: the workflow is stuck. `MessageArguments`, a worker interceptor
(registered by worker.build_worker), refuses such an update in its validation (InvalidPayload naming "(payload)")
and drops such a signal, logged, like a payload that does not fit.

PR-6: a payload whose value holds a `PersonalModel` (workflows/contract/privacy.py) gets the metadata
`personal-data: 1`; the payload codec (starter/codec.py, outside the workflow sandbox, where the keys are) encrypts
exactly those. When the value names its data subject (`account_id`), the payload also says whose values they are
and where in the JSON (`personal-data-subject`, `personal-data-paths`): the codec encrypts those values with the
subject's own key, which erasure destroys (crypto-shredding). All of it depends on the value alone: deterministic,
no environment read, safe in the sandbox.

Carried state (DESIGN "Limits that shape the design"; docs/bench.md "Limits found" 2): the input of a run that
continued as new (`carried_state` set) holds the workflow's whole state, which for a task grows with its pieces:
~190 bytes a piece as JSON, 1.84 MB at 10,000 pieces, near the server's 2 MB payload limit. Such an input, from
`COMPRESS_CARRIED_FROM_BYTES` up, travels zlib-compressed with the encoding `json/zlib` (measured at 10,000 pieces
and 1,000 creators: 1.84 MB -> 234 KB with short ids, 2.83 MB -> 696 KB with random UUIDs and amounts). Only the
worker writes and reads these inputs; the codec server (starter/codec_server.py) inflates them for the UI. zlib at a
fixed level gives the same bytes for the same input, and a continue-as-new input is not compared on replay anyway.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

import temporalio.api.common.v1
from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from workflows.contract.definitions import handler_arg_types
from workflows.contract.privacy import (
    PERSONAL_DATA_METADATA,
    PERSONAL_PATHS_METADATA,
    PERSONAL_SUBJECT_METADATA,
    carries_personal_data,
    personal_paths,
    personal_subject,
)

MAX_LISTED_ERRORS = 20
COMPRESSED_ENCODING = "json/zlib"
COMPRESS_CARRIED_FROM_BYTES = 16 * 1024
COMPRESSION_LEVEL = 6
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # a carried state is a few MB at most; refuse to inflate a bomb


def describe(error: ValidationError) -> tuple[str, list[dict[str, str]]]:
    problems = [{"field": ".".join(str(part) for part in e["loc"]) or "(payload)", "problem": e["msg"]}
                for e in error.errors()[:MAX_LISTED_ERRORS]]
    listed = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return f"invalid {error.title}: {listed}", problems


class ContractJSONConverter(PydanticJSONPlainPayloadConverter):
    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        payload = super().to_payload(value)
        if payload is None:
            return None
        if getattr(value, "carried_state", None) is not None and len(payload.data) >= COMPRESS_CARRIED_FROM_BYTES:
            payload = compress(payload)
        if carries_personal_data(value):
            payload.metadata[PERSONAL_DATA_METADATA] = b"1"
            subject, paths = personal_subject(value), personal_paths(value)
            if subject is not None and paths and payload.metadata.get("encoding") == b"json/plain":
                payload.metadata[PERSONAL_SUBJECT_METADATA] = subject.encode()
                payload.metadata[PERSONAL_PATHS_METADATA] = json.dumps(paths, separators=(",", ":")).encode()
        return payload

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as error:
            message, problems = describe(error)
            raise ApplicationError(message, {"errors": problems}, type="InvalidPayload",
                                   non_retryable=True) from None


def compress(payload: temporalio.api.common.v1.Payload) -> temporalio.api.common.v1.Payload:
    return temporalio.api.common.v1.Payload(metadata={"encoding": COMPRESSED_ENCODING.encode()},
                                            data=zlib.compress(payload.data, COMPRESSION_LEVEL))


def inflate(payload: temporalio.api.common.v1.Payload) -> temporalio.api.common.v1.Payload:
    """The `json/plain` payload a `json/zlib` one was made from (other metadata, e.g. the personal flag, kept)."""
    inflater = zlib.decompressobj()
    data = inflater.decompress(payload.data, MAX_INFLATED_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ApplicationError(f"a {COMPRESSED_ENCODING} payload inflates past {MAX_INFLATED_BYTES} bytes or is "
                               "cut short", type="InvalidPayload", non_retryable=True)
    plain = temporalio.api.common.v1.Payload(metadata=payload.metadata, data=data)
    plain.metadata["encoding"] = b"json/plain"
    return plain


class CompressedJSONConverter(EncodingPayloadConverter):
    """Reads `json/zlib` payloads (see the module's docstring); never chosen to write one: the JSON converter
    compresses a carried state itself."""

    def __init__(self, json_converter: ContractJSONConverter) -> None:
        self.json_converter = json_converter

    @property
    def encoding(self) -> str:
        return COMPRESSED_ENCODING

    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        return None

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        return self.json_converter.from_payload(inflate(payload), type_hint)


class ContractPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        json_converter = ContractJSONConverter()
        super().__init__(*(json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                           for c in DefaultPayloadConverter.default_encoding_payload_converters),
                         CompressedJSONConverter(json_converter))

    def from_payloads(self, payloads: Sequence[temporalio.api.common.v1.Payload],
                      type_hints: list[type] | None = None) -> list[Any]:
        values = super().from_payloads(payloads, type_hints)
        # A null travels in its own encoding and is never shown to pydantic: refuse it where a model is expected.
        for value, hint in zip(values, type_hints or [], strict=False):
            if value is None and isinstance(hint, type) and issubclass(hint, BaseModel):
                raise ApplicationError(f"invalid {hint.__name__}: (payload): a {hint.__name__} object is required, "
                                       "got null", {"errors": [{"field": "(payload)", "problem": "null"}]},
                                       type="InvalidPayload", non_retryable=True)
        return values


data_converter = DataConverter(payload_converter_class=ContractPayloadConverter)


def invalid_payload(what: str, field: str, problem: str) -> ApplicationError:
    return ApplicationError(f"invalid {what}: {field}: {problem}", {"errors": [{"field": field, "problem": problem}]},
                            type="InvalidPayload", non_retryable=True)


def misfit(kind: str, name: str, args: Sequence[Any]) -> str | None:
    """Why `args` cannot be the arguments of the current workflow's named signal or update; None when they fit (or
    the handler is dynamic: nothing to check against)."""
    types = handler_arg_types(type(workflow.instance()), "signal" if kind == "signal" else "update", name)
    if types is None or len(args) == len(types):
        return None
    wanted = " and ".join(f"a {getattr(t, '__name__', t)} object" for t in types) or "no argument"
    return f"{name} takes {wanted}, got {len(args)} argument{'' if len(args) == 1 else 's'}"


class MessageArguments(Interceptor):
    """Refuses updates and drops signals sent with the wrong number of arguments (see the module's docstring)."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _MessageArgumentsInbound


class _MessageArgumentsInbound(WorkflowInboundInterceptor):
    async def handle_signal(self, input: HandleSignalInput) -> None:
        problem = misfit("signal", input.signal, input.args)
        if problem is not None:
            workflow.logger.warning("signal %s dropped: (payload): %s", input.signal, problem)
            return
        await super().handle_signal(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        problem = misfit("update", input.update, input.args)
        if problem is not None:
            raise invalid_payload(f"{input.update} arguments", "(payload)", problem)
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        problem = misfit("update", input.update, input.args)  # an update without a validator gets here
        if problem is not None:
            raise invalid_payload(f"{input.update} arguments", "(payload)", problem)
        return await super().handle_update_handler(input)
