"""The payload codec of PR-6: AES-GCM over the payloads that carry personal data, keys from the environment.

The contract converter (workflows/contract/converter.py) flags a payload holding personal values with the metadata
`personal-data: 1`; this codec encrypts exactly those, in every client and worker of the project (worker.py,
starter.client.connect, the tests' servers) and in the codec server the Temporal UI calls (starter/codec_server.py).
Unflagged payloads pass through untouched, so clients without the key keep working for everything else.

An encrypted payload: metadata `encoding: binary/encrypted` and `encryption-key-id: <id>`, data = a random 96-bit
nonce followed by AES-256-GCM(the original Payload protobuf, metadata and data, serialized) with the key id as
associated data. Decoding needs the key of that id; a payload without the encrypted encoding decodes unchanged.

Subject keys (crypto-shredding, activities/subject_keys.py): a flagged payload that names its data subject and where
its personal values are (metadata `personal-data-subject`, `personal-data-paths`, set by the contract converter)
is sent as `json/sealed`: the same JSON with each personal value replaced by base64(nonce + AES-256-GCM(value))
under that subject's own key, whose id is in `encryption-key-id` (`sk-...`), the value's JSON path as associated
data. Erasing the subject destroys the key: such a payload then decodes to the same JSON with every personal value
`[erased]` and the metadata `personal-data-erased: <key id>`, so a workflow whose history holds it still replays
and the UI shows "erased". Subject keys live in the ledger database, wrapped by the key ring below: a codec that
seals or unseals needs that database (`subject_keys`; starter.client.connect and the codec server open LEDGER_DSN,
the worker its own). A flagged payload without a subject is encrypted whole under the ring (below), as every
personal payload was before subject keys: those, in older histories, still decode.

Keys: PAYLOAD_KEYS="k2:<base64 of 32 bytes>,k1:<...>": the first encrypts, all decrypt, so rotating is putting a new
key first and keeping the old ones while histories written under them are retained. Without PAYLOAD_KEYS the file
PAYLOAD_KEYS_FILE (default .data/payload-keys, same format) is read; the embedded dev run creates it once.
`python -m starter payload-key` prints a new key entry.

Lives in starter/ (not in workflows/contract/): it reads the environment and files, which workflow code must never
do, and it is what a Python service imports next to starter.client; the worker imports it only at connect time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from workflows.contract.converter import data_converter
from workflows.contract.privacy import (
    PERSONAL_DATA_METADATA,
    PERSONAL_PATHS_METADATA,
    PERSONAL_SUBJECT_METADATA,
)

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
DEFAULT_KEYS_FILE = ".data/payload-keys"
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SEALED_ENCODING = b"json/sealed"
ERASED_VALUE = "[erased]"
ERASED_METADATA = "personal-data-erased"
HOW_TO_SET = ("set PAYLOAD_KEYS=\"<id>:<base64 of 32 bytes>\" (`python -m starter payload-key` prints one; "
              "README: Personal data)")


class PayloadKeyError(ValueError):
    """Keys missing, malformed or unknown: the message says which and how to fix it (never shows key material)."""


class SubjectKeyErased(Exception):
    """The subject key was destroyed: what it encrypted is erased (PR-2), by design, not an error to retry."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"subject key {key_id} was destroyed: erased")
        self.key_id = key_id


class SubjectKeyStore(Protocol):
    """activities.subject_keys.SubjectKeys: a subject's live key (made on first use); a key by id, or
    SubjectKeyErased."""

    def key_for_subject(self, subject_id: str) -> tuple[str, bytes]: ...

    def key_by_id(self, key_id: str) -> bytes: ...


def seal_text(key: bytes, plain: str, associated: str) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plain.encode(), associated.encode())).decode()


def open_text(key: bytes, sealed: str, associated: str) -> str:
    data = base64.b64decode(sealed)
    try:
        return AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], associated.encode()).decode()
    except InvalidTag:
        raise PayloadKeyError(f"a value under key {associated.split('|')[0]!r} failed authentication: altered "
                              "data, or a different key under the same id") from None


@dataclass(frozen=True)
class KeyRing:
    """Key id -> 32-byte key, in order: the first one encrypts, every one decrypts."""

    keys: Mapping[str, bytes] = field(default_factory=dict)
    source: str = "no keys"

    @classmethod
    def parse(cls, text: str, source: str = "PAYLOAD_KEYS") -> KeyRing:
        keys: dict[str, bytes] = {}
        entries = [e.strip() for line in text.splitlines() if not line.lstrip().startswith("#")
                   for e in line.split(",")]
        for number, entry in enumerate(entries, start=1):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep or not KEY_ID.match(key_id):
                raise PayloadKeyError(f"{source}: entry {number} is not '<id>:<base64 key>' with an id of letters, "
                                      "digits, '_', '.', '-'")
            if key_id in keys:
                raise PayloadKeyError(f"{source}: key id {key_id!r} is listed twice")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error:
                raise PayloadKeyError(f"{source}: key {key_id!r} is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(f"{source}: key {key_id!r} has {len(key)} bytes, AES-256 needs {KEY_BYTES}")
            keys[key_id] = key
        if not keys:
            raise PayloadKeyError(f"{source}: no key in it; {HOW_TO_SET}")
        return cls(keys, source)

    @property
    def current(self) -> str | None:
        return next(iter(self.keys), None)

    def __repr__(self) -> str:  # never print key material
        return f"KeyRing(ids={list(self.keys)}, source={self.source!r})"


def new_key_entry(key_id: str | None = None) -> str:
    key_id = key_id or f"k{datetime.now(UTC):%Y%m%d%H%M%S}"
    if not KEY_ID.match(key_id):
        raise PayloadKeyError(f"key id {key_id!r}: use letters, digits, '_', '.', '-' (at most 64)")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def create_key_file(path: Path, key_id: str = "dev1") -> bool:
    """Writes a new key to `path` (mode 0600) unless the file exists. True when it was created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# payload keys (PR-6): first encrypts, all decrypt; keep every key while its histories live\n")
        out.write(new_key_entry(key_id) + "\n")
    return True


def load_keys(environ: Mapping[str, str] | None = None, *, create: bool = False, required: bool = False) -> KeyRing:
    """PAYLOAD_KEYS, else the file PAYLOAD_KEYS_FILE (default .data/payload-keys). `create` makes that file when
    it is missing (the embedded dev run); `required` refuses an empty result. Without keys the codec still passes
    plain payloads both ways and refuses, with a message, to send or read a personal one."""
    env = os.environ if environ is None else environ
    if env.get("PAYLOAD_KEYS"):
        return KeyRing.parse(env["PAYLOAD_KEYS"])
    path = Path(env.get("PAYLOAD_KEYS_FILE") or DEFAULT_KEYS_FILE)
    if create:
        create_key_file(path)
    if path.is_file():
        return KeyRing.parse(path.read_text(encoding="utf-8"), str(path.resolve()))
    if required:
        raise PayloadKeyError(f"no payload keys: PAYLOAD_KEYS is not set and {path} does not exist; {HOW_TO_SET}")
    return KeyRing()


class EncryptionCodec(PayloadCodec):
    """Encrypts the payloads flagged `personal-data: 1`, decrypts the `binary/encrypted` ones."""

    def __init__(self, keys: KeyRing,
                 subject_keys: SubjectKeyStore | Callable[[], SubjectKeyStore] | None = None) -> None:
        self.keys = keys
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}
        self._subject_keys = subject_keys

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if any(PERSONAL_SUBJECT_METADATA in p.metadata for p in payloads):  # database calls: off the event loop
            return await asyncio.to_thread(self.encode_sync, payloads)
        return self.encode_sync(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if any(p.metadata.get("encoding") == SEALED_ENCODING for p in payloads):
            return await asyncio.to_thread(self.decode_sync, payloads)
        return self.decode_sync(payloads)

    def encode_sync(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [(self.seal(p) if PERSONAL_SUBJECT_METADATA in p.metadata else self.encrypt(p))
                if p.metadata.get(PERSONAL_DATA_METADATA) == b"1" else p for p in payloads]

    def decode_sync(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) if p.metadata.get("encoding") == ENCODING
                else self.unseal(p) if p.metadata.get("encoding") == SEALED_ENCODING else p for p in payloads]

    def subject_keys(self, subject: str) -> SubjectKeyStore:
        store = self._subject_keys
        if store is None:
            raise PayloadKeyError(f"a payload with personal data of account {subject!r} is encrypted with that "
                                  "subject's key, kept in the ledger database: this process has no subject key "
                                  "store (starter.client.connect and the codec server open LEDGER_DSN)")
        if not hasattr(store, "key_by_id"):  # a factory: the database is opened on first use
            store = self._subject_keys = store()
        return cast(SubjectKeyStore, store)

    def seal(self, payload: Payload) -> Payload:
        subject = payload.metadata[PERSONAL_SUBJECT_METADATA].decode()
        key_id, key = self.subject_keys(subject).key_for_subject(subject)
        document = json.loads(payload.data)
        for path in json.loads(payload.metadata[PERSONAL_PATHS_METADATA]):
            parent, last = _locate(document, path)
            parent[last] = seal_text(key, parent[last], f"{key_id}|{json.dumps(path)}")
        sealed = Payload(metadata=payload.metadata, data=_dump(document))
        sealed.metadata["encoding"] = SEALED_ENCODING
        sealed.metadata[KEY_ID_METADATA] = key_id.encode()
        return sealed

    def unseal(self, payload: Payload) -> Payload:
        """The payload as sent, or, for an erased subject, the same JSON with every personal value `[erased]`."""
        subject = payload.metadata.get(PERSONAL_SUBJECT_METADATA, b"").decode()
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        key: bytes | None
        try:
            key = self.subject_keys(subject).key_by_id(key_id)
        except SubjectKeyErased:
            key = None
        document = json.loads(payload.data)
        for path in json.loads(payload.metadata[PERSONAL_PATHS_METADATA]):
            parent, last = _locate(document, path)
            parent[last] = ERASED_VALUE if key is None else open_text(key, parent[last],
                                                                      f"{key_id}|{json.dumps(path)}")
        plain = Payload(metadata=payload.metadata, data=_dump(document))
        plain.metadata["encoding"] = b"json/plain"
        del plain.metadata[KEY_ID_METADATA]
        if key is None:
            plain.metadata[ERASED_METADATA] = key_id.encode()
        return plain

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keys.current
        if key_id is None:
            raise PayloadKeyError(f"a payload carrying personal data cannot be sent without a payload key; "
                                  f"{HOW_TO_SET}")
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", errors="replace")
        aead = self._aead.get(key_id)
        if aead is None:
            known = ", ".join(self.keys.keys) or "none"
            raise PayloadKeyError(f"payload encrypted with key id {key_id!r}, which is not among the keys of this "
                                  f"process (known: {known}, from {self.keys.source}): add that key to "
                                  "PAYLOAD_KEYS after the current one")
        try:
            plain = aead.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise PayloadKeyError(f"payload under key id {key_id!r} failed authentication: altered data, or a "
                                  "different key under the same id") from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def _locate(document: Any, path: list[str | int]) -> tuple[Any, str | int]:
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    return parent, path[-1]


def _dump(document: Any) -> bytes:
    # The contract converter's own JSON form (compact, UTF-8), so that decoding gives back the bytes sent.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def codec_data_converter(keys: KeyRing,
                         subject_keys: SubjectKeyStore | Callable[[], SubjectKeyStore] | None = None) -> DataConverter:
    """The project's data converter (workflows/contract/converter.py) with the encryption codec."""
    return dataclasses.replace(data_converter, payload_codec=EncryptionCodec(keys, subject_keys))


def with_subject_keys(converter: DataConverter,
                      subject_keys: SubjectKeyStore | Callable[[], SubjectKeyStore]) -> DataConverter:
    """The same converter, its codec (same key ring) given a subject key store."""
    return dataclasses.replace(converter, payload_codec=EncryptionCodec(ring_of(converter), subject_keys))


def ring_of(converter: DataConverter) -> KeyRing:
    """The key ring of a converter made by codec_data_converter (none for another one)."""
    codec = converter.payload_codec
    return codec.keys if isinstance(codec, EncryptionCodec) else KeyRing()
