"""The directory of parties as the workflows see it: the facts eligibility needs about a client or a creator
(AM-1, AM-4, AM-18; workflows/rules/eligibility.py defines the facts and decides on them)."""

from __future__ import annotations

from pydantic import BaseModel

from ports.port import ActivityPort
from workflows.rules.eligibility import ClientFacts, CreatorFacts


class PartyRequest(BaseModel):
    party_id: str


CLIENT_FACTS = ActivityPort[PartyRequest, ClientFacts]("directory.client_facts", ClientFacts)
CREATOR_FACTS = ActivityPort[PartyRequest, CreatorFacts]("directory.creator_facts", CreatorFacts)
