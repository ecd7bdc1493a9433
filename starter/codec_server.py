"""The codec server (PR-6): lets an operator holding the payload keys read encrypted payloads in the Temporal UI.

`python -m starter codec-server [--port 8081] [--host 127.0.0.1] [--origin URL ...]`; the embedded dev run of
worker.py starts one too and points its UI at it (`--ui-codec-endpoint`); docker-compose.yml runs it as the
`codec-server` service.

Temporal's remote codec protocol: POST /encode and POST /decode (also under a namespace segment, /{namespace}/decode,
as the CLI's endpoint templating sends them) with a JSON body {"payloads": [...]}, the proto3 JSON of Payloads
(metadata values and data in base64), answered in the same shape. The UI calls it from the operator's browser, so
the answers carry CORS headers for the UI origins only (preflight OPTIONS included, the X-Namespace header
allowed): a decrypting endpoint open to every origin would let any web page the operator visits read personal data
through it. A request from a browser origin not in the list is refused with 403. CORS does not stop other programs,
so every /encode and /decode also needs a bearer token, and every call is audited (starter/codec_auth.py: JWTs
with a role for personal payloads, or the local static token; 401/403 with the reason). The preflight needs no
token (browsers send none). Standard library only (http.server in a thread).

Payloads sealed with a subject key (starter/codec.py) are opened with the subject keys in the ledger database
(LEDGER_DSN); those of an erased subject come back with every personal value `[erased]` and the metadata
`personal-data-erased`.

/decode also inflates the `json/zlib` payloads (a carried state, workflows/contract/converter.py) into the JSON they
hold, so that an operator reads the input of a run that continued as new, not compressed bytes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.exceptions import ApplicationError

from starter.codec import (
    ENCODING,
    ERASED_METADATA,
    KEY_ID_METADATA,
    SEALED_ENCODING,
    EncryptionCodec,
    KeyRing,
    PayloadKeyError,
    SubjectKeyStore,
)
from starter.codec_auth import Caller, CodecAuth, Refusal, audit
from workflows.contract.converter import COMPRESSED_ENCODING, inflate
from workflows.contract.privacy import PERSONAL_SUBJECT_METADATA

DEFAULT_PORT = 8081
MAX_BODY_BYTES = 16 * 1024 * 1024


def ui_origins(*ports: int) -> list[str]:
    return [f"http://{host}:{port}" for port in ports for host in ("localhost", "127.0.0.1")]


DEFAULT_ORIGINS = ui_origins(8233, 8080)  # the embedded dev server's UI, the compose file's UI
ALLOWED_HEADERS = "Content-Type, X-Namespace, X-Workflow-Id, Authorization"  # the workflow id: for the audit line


class CodecServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], keys: KeyRing, origins: Iterable[str], auth: CodecAuth,
                 subject_keys: SubjectKeyStore | Callable[[], SubjectKeyStore] | None = None) -> None:
        self.codec = EncryptionCodec(keys, subject_keys)
        self.auth = auth
        self.origins = frozenset(o.rstrip("/") for o in origins)
        super().__init__(address, CodecHandler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://{'localhost' if host in ('', '0.0.0.0', '127.0.0.1') else host}:{port}"


class CodecHandler(BaseHTTPRequestHandler):
    server: CodecServer
    protocol_version = "HTTP/1.1"

    def do_OPTIONS(self) -> None:
        """CORS preflight: the browser asks before a POST with a JSON body and the X-Namespace header."""
        if not self._origin_allowed():
            self._reply(HTTPStatus.FORBIDDEN, {"error": "origin not allowed"})
            return
        self._reply(HTTPStatus.NO_CONTENT, None, {"Access-Control-Max-Age": "600"})

    def do_POST(self) -> None:
        path_token, segments = self.server.auth.split_path(self.path)
        action = segments[-1] if segments else ""
        if action not in ("encode", "decode"):
            self._reply(HTTPStatus.NOT_FOUND, {"error": "no such route: POST /encode or /decode"})
            return
        if not self._origin_allowed():
            self._reply(HTTPStatus.FORBIDDEN, {"error": "origin not allowed"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            return
        body = self.rfile.read(length)
        # The namespace: the X-Namespace header, else /{namespace}/decode (CLI templating); never a deeper path,
        # whose segments the audit line must not repeat (a token in the path).
        seen: dict[str, Any] = {"action": action, "namespace": self.headers.get("X-Namespace") or
                                (segments[0] if len(segments) == 2 else None),
                "workflow_id": self.headers.get("X-Workflow-Id"), "remote": self.client_address[0]}
        caller = self.server.auth.authenticate(self.headers.get("Authorization"), path_token)
        if isinstance(caller, Refusal):
            self._refuse(caller, seen)
            return
        try:
            payloads = json_format.Parse(body or b"{}", Payloads(), ignore_unknown_fields=True)
            personal = [p for p in payloads.payloads if p.metadata.get("encoding") in (ENCODING, SEALED_ENCODING)]
            seen |= {"payloads": len(payloads.payloads), "personal": len(personal),
                     "key_ids": sorted({p.metadata.get(KEY_ID_METADATA, b"").decode() for p in personal}),
                     # whose data it is (account ids, not personal data), for "who read whose data"
                     "data_subjects": sorted({p.metadata[PERSONAL_SUBJECT_METADATA].decode() for p in personal
                                              if PERSONAL_SUBJECT_METADATA in p.metadata})}
            if action == "decode" and personal and not caller.may_read_personal:
                self._refuse(Refusal(403, f"no role to read personal payloads: the token's "
                                     f"{self.server.auth.role_claim_name} claim lacks "
                                     f"{self.server.auth.role_name!r}", caller.subject), seen)
                return
            codec = self.server.codec
            if action == "encode":
                done = codec.encode_sync(payloads.payloads)
            else:
                done = [inflate(p) if p.metadata.get("encoding") == COMPRESSED_ENCODING.encode() else p
                        for p in codec.decode_sync(payloads.payloads)]
        except json_format.ParseError as error:
            self._audit(caller, seen, "failed", "body is not Payloads JSON")
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"body is not {{\"payloads\": [...]}}: {error}"})
            return
        except (PayloadKeyError, ApplicationError) as error:
            self._audit(caller, seen, "failed", str(error))
            self._reply(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(error)})
            return
        seen["erased"] = sum(1 for p in done if ERASED_METADATA in p.metadata)
        self._audit(caller, seen, "served")
        self._reply(HTTPStatus.OK, json_format.MessageToDict(Payloads(payloads=done)))

    def _audit(self, caller: Caller, seen: dict[str, Any], outcome: str, reason: str | None = None) -> None:
        audit.info("codec call", outcome=outcome, subject=caller.subject, auth=caller.method, reason=reason, **seen)

    def _refuse(self, refusal: Refusal, seen: dict[str, Any]) -> None:
        audit.warning("codec call", outcome="refused", status=refusal.status, subject=refusal.subject,
                      reason=refusal.reason, **seen)
        description = refusal.reason.replace('"', "'")
        challenge = ('Bearer realm="codec-server"' if refusal.status == 403 else
                     f'Bearer realm="codec-server", error="invalid_token", error_description="{description}"')
        if refusal.status == 403:
            challenge += ', error="insufficient_scope"'
        self._reply(HTTPStatus(refusal.status), {"error": refusal.reason}, {"WWW-Authenticate": challenge})

    def do_GET(self) -> None:
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST /encode or /decode"}, {"Allow": "POST, OPTIONS"})

    def _origin_allowed(self) -> bool:
        origin = self.headers.get("Origin")
        return origin is None or origin.rstrip("/") in self.server.origins

    def _reply(self, status: HTTPStatus, body: object, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        origin = self.headers.get("Origin")
        if origin is not None and origin.rstrip("/") in self.server.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Vary", "Origin")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # payloads never reach a log; the caller logs where the server listens


def start_in_thread(keys: KeyRing, port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                    origins: Iterable[str] = DEFAULT_ORIGINS, *, auth: CodecAuth,
                    subject_keys: SubjectKeyStore | Callable[[], SubjectKeyStore] | None = None) -> CodecServer:
    """Starts the server on a daemon thread (port 0: any free port); `.shutdown()` stops it."""
    server = CodecServer((host, port), keys, origins, auth, subject_keys)
    threading.Thread(target=server.serve_forever, name="codec-server", daemon=True).start()
    return server
