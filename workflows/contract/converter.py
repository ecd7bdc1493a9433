"""The data converter of the contract: JSON through pydantic, with refusals a person can act on.

Temporal's pydantic converter reports a payload that does not fit its model as "Failed decoding arguments". This
one raises a non-retryable `ApplicationError` of type `InvalidPayload` whose message names every offending field
(and whose details list them), so that:
- an update with a bad payload is rejected with that message, and nothing changes;
- a signal with a bad payload is dropped (and logged) without failing the workflow task;
- an activity given a bad payload fails for good instead of retrying forever.

PR-6: a payload whose value holds a `PersonalModel` (workflows/contract/privacy.py) gets the metadata
`personal-data: 1`; the payload codec (starter/codec.py, outside the workflow sandbox, where the keys are) encrypts
exactly those. The flag depends on the value alone: deterministic, no environment read, safe in the sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import temporalio.api.common.v1
from pydantic import BaseModel, ValidationError
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from workflows.contract.privacy import PERSONAL_DATA_METADATA, carries_personal_data

MAX_LISTED_ERRORS = 20


def describe(error: ValidationError) -> tuple[str, list[dict[str, str]]]:
    problems = [{"field": ".".join(str(part) for part in e["loc"]) or "(payload)", "problem": e["msg"]}
                for e in error.errors()[:MAX_LISTED_ERRORS]]
    listed = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return f"invalid {error.title}: {listed}", problems


class ContractJSONConverter(PydanticJSONPlainPayloadConverter):
    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        payload = super().to_payload(value)
        if payload is not None and carries_personal_data(value):
            payload.metadata[PERSONAL_DATA_METADATA] = b"1"
        return payload

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as error:
            message, problems = describe(error)
            raise ApplicationError(message, {"errors": problems}, type="InvalidPayload",
                                   non_retryable=True) from None


class ContractPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        json_converter = ContractJSONConverter()
        super().__init__(*(json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                           for c in DefaultPayloadConverter.default_encoding_payload_converters))

    def from_payloads(self, payloads: Sequence[temporalio.api.common.v1.Payload],
                      type_hints: list[type] | None = None) -> list[Any]:
        values = super().from_payloads(payloads, type_hints)
        # A null travels in its own encoding and is never shown to pydantic: refuse it where a model is expected.
        for value, hint in zip(values, type_hints or []):
            if value is None and isinstance(hint, type) and issubclass(hint, BaseModel):
                raise ApplicationError(f"invalid {hint.__name__}: (payload): a {hint.__name__} object is required, "
                                       "got null", {"errors": [{"field": "(payload)", "problem": "null"}]},
                                       type="InvalidPayload", non_retryable=True)
        return values


data_converter = DataConverter(payload_converter_class=ContractPayloadConverter)
