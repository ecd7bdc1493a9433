"""Shared vocabulary of the PR workflows (PR-1..PR-7): vault tokens, personal fields, account parties.

PR-6: names, phone numbers, ID numbers and contact details never travel through Temporal. Services put them in the
personal-data vault (activities/personal_data.py, `starter.privacy.put_personal_data`) and send the opaque token
the vault returns. A token is random (no hash of the value): it tells nothing about the person.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from workflows.rules.privacy import PersonalField

__all__ = ["TOKEN_PATTERN", "AccountParty", "PersonalField", "VaultToken"]

TOKEN_PATTERN = r"^pdt_[0-9a-f]{32}$"
# An opaque reference to one personal value kept in the vault; anything else (a phone number...) is refused.
VaultToken = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]


class AccountParty(StrEnum):
    """Which ledger accounts belong to the account: client:{id}:available, creator:{id}:payable, agency:{id}:payable."""

    CLIENT = "client"
    CREATOR = "creator"
    AGENCY = "agency"


def money_account(party: AccountParty, account_id: str) -> str:
    return f"client:{account_id}:available" if party is AccountParty.CLIENT else f"{party.value}:{account_id}:payable"
