"""Shared vocabulary of the PR workflows (PR-1..PR-7): vault tokens, personal fields, account parties.

PR-6: names, phone numbers, ID numbers and contact details never appear in clear in Temporal. Two layers:
- the vault (activities/personal_data.py): services put values in it and send the opaque token it returns; a token
  is random (no hash of the value) and tells nothing about the person. Workflows hold tokens; erasure (PR-2)
  removes the value from the vault, which a history, immutable, could never do;
- the payload codec (starter/codec.py): a value that must travel in clear to the workflow (a request's intake,
  before the vault has it) is in a model subclassing `PersonalModel`. The contract's payload converter flags every
  payload that holds one (metadata `personal-data: 1`, decided from the value alone: deterministic, no I/O, safe in
  the workflow sandbox) and the codec encrypts exactly the flagged payloads with AES-GCM. Other payloads stay
  plain JSON, so clients without the key (other languages, the mount services) keep working.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, get_args, get_origin

from pydantic import BaseModel, StringConstraints

from workflows.contract.common import ContractModel
from workflows.rules.privacy import PersonalField

__all__ = [
    "PERSONAL_DATA_METADATA", "PERSONAL_PATHS_METADATA", "PERSONAL_SUBJECT_METADATA", "TOKEN_PATTERN", "AccountParty",
    "PersonalField", "PersonalModel", "VaultToken", "carries_personal_data",
]

TOKEN_PATTERN = r"^pdt_[0-9a-f]{32}$"
# An opaque reference to one personal value kept in the vault; anything else (a phone number...) is refused.
VaultToken = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]


PERSONAL_DATA_METADATA = "personal-data"  # payload metadata key; value b"1" on a payload the codec must encrypt
# The account the personal values of a flagged payload belong to, and where they are in its JSON: the codec encrypts
# those values with that subject's own key (crypto-shredding, activities/subject_keys.py).
PERSONAL_SUBJECT_METADATA = "personal-data-subject"
PERSONAL_PATHS_METADATA = "personal-data-paths"


class _PersonalValue:
    """Marks a string field whose value is personal (in a PersonalModel): the codec seals exactly these."""


PERSONAL_VALUE = _PersonalValue()
PersonalText = Annotated[str, StringConstraints(min_length=1, max_length=256), PERSONAL_VALUE]


class PersonalModel(ContractModel):
    """Marker base: a model holding personal values in clear. Every payload that contains one, at any depth, is
    flagged by the contract converter and encrypted by the codec (PR-6)."""

    carries_personal_data: ClassVar[bool] = True


def carries_personal_data(value: object) -> bool:
    """The value is, or holds somewhere inside, a `PersonalModel` (None fields hold nothing). Only the models whose
    field types can reach one are walked, so the large states of the other workflows cost one cached look-up."""
    if isinstance(value, BaseModel):
        model = type(value)
        if getattr(model, "carries_personal_data", False):
            return True
        return _may_carry(model) and any(carries_personal_data(getattr(value, f)) for f in model.model_fields)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(carries_personal_data(item) for item in value)
    if isinstance(value, dict):
        return any(carries_personal_data(item) for item in value.values())
    return False


def personal_subject(value: object) -> str | None:
    """The data subject of a payload: the `account_id` of its top-level model (every contract model that can hold a
    PersonalModel has one; tests/test_privacy_shredding.py checks it)."""
    subject = getattr(value, "account_id", None) if isinstance(value, BaseModel) else None
    return subject if isinstance(subject, str) and subject else None


JsonPath = list[str | int]


def personal_paths(value: object, at: JsonPath | None = None) -> list[JsonPath]:
    """Where the personal values (PersonalText fields of PersonalModels) are in the value's JSON, in order."""
    at = at or []
    found: list[JsonPath] = []
    if isinstance(value, BaseModel):
        model = type(value)
        personal = getattr(model, "carries_personal_data", False)
        if not personal and not _may_carry(model):
            return []
        for name, info in model.model_fields.items():
            item = getattr(value, name)
            if personal and isinstance(item, str) and PERSONAL_VALUE in info.metadata:
                found.append([*at, name])
            else:
                found += personal_paths(item, [*at, name])
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += personal_paths(item, [*at, index])
    elif isinstance(value, dict):
        for key, item in value.items():
            found += personal_paths(item, [*at, str(key)])
    return found


_MAY_CARRY: dict[type, bool] = {}


def _may_carry(model: type[BaseModel]) -> bool:
    if model not in _MAY_CARRY:
        _MAY_CARRY[model] = False  # a model that refers to itself: decided by its other fields
        _MAY_CARRY[model] = any(_annotation_may_carry(f.annotation) for f in model.model_fields.values())
    return _MAY_CARRY[model]


def _annotation_may_carry(annotation: Any) -> bool:
    if annotation is Any or annotation is object or annotation is BaseModel:
        return True  # cannot tell from the type: look at the value
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return bool(getattr(annotation, "carries_personal_data", False)) or _may_carry(annotation)
    origin = get_origin(annotation)
    if origin is Annotated:
        return _annotation_may_carry(get_args(annotation)[0])
    if origin is not None:  # list[...], dict[...], X | None, Literal[...]
        return any(_annotation_may_carry(arg) for arg in get_args(annotation))
    return False


class AccountParty(StrEnum):
    """Which ledger accounts belong to the account: client:{id}:available, creator:{id}:payable, agency:{id}:payable."""

    CLIENT = "client"
    CREATOR = "creator"
    AGENCY = "agency"


def money_account(party: AccountParty, account_id: str) -> str:
    return f"client:{account_id}:available" if party is AccountParty.CLIENT else f"{party.value}:{account_id}:payable"
