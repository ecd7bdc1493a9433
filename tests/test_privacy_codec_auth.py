"""PR-6: who may read personal payloads through the codec server (starter/codec_auth.py), and its audit line.

The codec server decodes only for a bearer token: a JWT of the configured issuer and audience, verified against a
PEM key or a JWKS URL, whose role claim allows personal payloads; or the local static token. No token, a wrong
audience, issuer, an expired or forged token: 401; a valid token without the role: 403 for personal payloads.
Every call writes one audit line (caller, namespace, workflow id, counts, key ids), never a value or a token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import stat
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import json_format
from structlog.testing import capture_logs
from temporalio.api.common.v1 import Payload

import worker
from starter.codec import EncryptionCodec, KeyRing
from starter.codec_auth import CodecAuth, CodecAuthError, JwtPolicy
from starter.codec_server import CodecServer, start_in_thread
from tests.privacy_helpers import ID_NUMBER, KEY_1, post
from workflows.contract import data_subject_request as dsr
from workflows.contract import mount_task as mt
from workflows.contract.converter import data_converter as plain_converter
from workflows.contract.privacy import PersonalField

ISSUER, AUDIENCE = "https://id.example.test/realms/ops", "xingtu-codec"
UI = "http://localhost:8233"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
PEM = EC_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def token(key: Any = EC_KEY, algorithm: str = "ES256", headers: dict[str, str] | None = None,
          **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "op-li", "iat": now, "exp": now + 300,
            "roles": ["personal-data-reader"], **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm, headers=headers)


def hs256_with_public_key() -> str:
    """A forged token: HMAC keyed with the server's public PEM (PyJWT refuses to make one, so made by hand)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = jwt.decode(token(), options={"verify_signature": False})
    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    signing_input = f"{part(header)}.{part(json.dumps(claims).encode())}"
    signature = hmac.new(PEM.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


def bodies() -> tuple[bytes, bytes, list[Payload]]:
    """(a batch with one personal payload and one plain, a batch with the plain one only, the original payloads)"""
    flagged = plain_converter.payload_converter.to_payloads(
        [dsr.GivenValue(field=PersonalField.ID_NUMBER, value=ID_NUMBER), mt.JoinRequest(creator_id="c1")])
    sealed = EncryptionCodec(KeyRing.parse(KEY_1)).encode_sync(flagged)

    def encode(payloads: list[Payload]) -> bytes:
        return json.dumps({"payloads": [json_format.MessageToDict(p) for p in payloads]}).encode()

    return encode(sealed), encode(sealed[1:]), flagged


@pytest.fixture
def pem_server() -> Iterator[CodecServer]:
    server = start_in_thread(KeyRing.parse(KEY_1), 0, origins=[UI],
                             auth=CodecAuth(JwtPolicy(issuer=ISSUER, audience=AUDIENCE, public_key_pem=PEM)))
    yield server
    server.shutdown()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}", "X-Namespace": "default", "X-Workflow-Id": "dsr:r-1"}


def test_pr_6_codec_refuses_without_a_valid_token_and_audits_every_call(pem_server: CodecServer) -> None:
    personal, plain_only, flagged = bodies()
    url = f"{pem_server.url}/decode"
    other = ec.generate_private_key(ec.SECP256R1())
    refused = {
        "no token": (post(url, personal), 401, "no bearer token"),
        "wrong audience": (post(url, personal, headers=bearer(token(aud="someone-else"))), 401, "audience"),
        "wrong issuer": (post(url, personal, headers=bearer(token(iss="https://evil.test"))), 401, "issuer"),
        "expired": (post(url, personal, headers=bearer(token(exp=int(time.time()) - 3600))), 401, "expired"),
        "signed by another key": (post(url, personal, headers=bearer(token(other))), 401, "invalid token"),
        # A symmetric token keyed with the public PEM (algorithm confusion) is refused.
        "HS256 with the public key": (post(url, personal, headers=bearer(hs256_with_public_key())), 401,
                                      "invalid token"),
        "no role": (post(url, personal, headers=bearer(token(roles=["viewer"]))), 403, "no role"),
    }
    for what, ((status, headers, answer), expected, reason) in refused.items():
        assert status == expected, what
        assert reason in json.loads(answer)["error"], what
        assert headers["WWW-Authenticate"].startswith("Bearer"), what
    # A caller without the role still reads plain payloads (a carried state, ids), never a personal one.
    with capture_logs() as logs:
        status, _, answer = post(url, plain_only, headers=bearer(token(roles=["viewer"])))
        assert status == 200
        status, _, answer = post(url, personal, headers=bearer(token()))
    assert status == 200
    decoded = [json_format.ParseDict(p, Payload()) for p in json.loads(answer)["payloads"]]
    assert decoded == flagged and ID_NUMBER in decoded[0].data.decode()
    audited = [e for e in logs if e["event"] == "codec call"]
    assert [(e["outcome"], e["subject"], e["auth"], e["personal"], e["payloads"]) for e in audited] == [
        ("served", "op-li", "jwt", 0, 1), ("served", "op-li", "jwt", 1, 2)]
    last = audited[-1]
    assert (last["namespace"], last["workflow_id"], last["key_ids"], last["action"]) == (
        "default", "dsr:r-1", ["k1"], "decode")
    assert ID_NUMBER not in repr(audited) and "Bearer" not in repr(audited)
    # Refusals are audited too, with their reason.
    with capture_logs() as logs:
        post(url, personal, headers=bearer(token(roles=None)))
    assert [(e["outcome"], e["status"], e["subject"]) for e in logs] == [("refused", 403, "op-li")]


def test_pr_6_codec_role_claim_by_path_and_from_a_jwks_url() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwks = json.dumps({"keys": [{**jwk, "kid": "ops-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, format: str, *args: object) -> None:
            pass

    provider = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    env = {"CODEC_JWKS_URL": f"http://127.0.0.1:{provider.server_address[1]}/certs", "CODEC_JWT_ISSUER": ISSUER,
           "CODEC_JWT_AUDIENCE": AUDIENCE, "CODEC_JWT_ROLE_CLAIM": "realm_access.roles", "CODEC_JWT_ROLE": "pii"}
    server = start_in_thread(KeyRing.parse(KEY_1), 0, auth=CodecAuth.from_env(env))
    try:
        personal, _, _ = bodies()
        signed = token(rsa_key, "RS256", {"kid": "ops-1"}, roles=None, realm_access={"roles": ["pii", "ops"]})
        assert post(f"{server.url}/decode", personal, headers=bearer(signed))[0] == 200
        flat_role = token(rsa_key, "RS256", {"kid": "ops-1"}, roles=["pii"])  # not where the claim is looked for
        assert post(f"{server.url}/decode", personal, headers=bearer(flat_role))[0] == 403
        unknown_kid = token(rsa_key, "RS256", {"kid": "ops-9"}, realm_access={"roles": ["pii"]})
        assert post(f"{server.url}/decode", personal, headers=bearer(unknown_kid))[0] == 401
    finally:
        server.shutdown()
        provider.shutdown()


def test_pr_6_codec_static_token_in_the_header_or_for_the_embedded_ui_in_the_path() -> None:
    secret = "static-token-of-this-run-0123"
    personal, _, flagged = bodies()
    in_path = start_in_thread(KeyRing.parse(KEY_1), 0, origins=[UI],
                              auth=CodecAuth(static_tokens=[secret], token_in_path=True))
    header_only = start_in_thread(KeyRing.parse(KEY_1), 0, auth=CodecAuth(static_tokens=[secret]))
    try:
        with capture_logs() as logs:
            status, headers, answer = post(f"{in_path.url}/local/{secret}/decode", personal,
                                           headers={"Origin": UI, "X-Namespace": "default"})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == UI
        assert [json_format.ParseDict(p, Payload()) for p in json.loads(answer)["payloads"]] == flagged
        assert [(e["subject"], e["auth"], e["namespace"]) for e in logs] == [("static-token", "static-token",
                                                                              "default")]
        assert secret not in repr(logs)
        assert post(f"{in_path.url}/local/wrong-token-0123456789/decode", personal)[0] == 401
        assert post(f"{header_only.url}/decode", personal, headers=bearer(secret))[0] == 200
        assert post(f"{header_only.url}/local/{secret}/decode", personal)[0] == 401  # path form not enabled here
        assert post(f"{header_only.url}/decode", personal, headers=bearer("x" * 30))[0] == 401
    finally:
        in_path.shutdown()
        header_only.shutdown()
    with pytest.raises(CodecAuthError, match="authenticates nobody"):
        CodecAuth.from_env({})
    with pytest.raises(CodecAuthError, match="CODEC_JWT_ISSUER and CODEC_JWT_AUDIENCE"):
        CodecAuth.from_env({"CODEC_JWKS_URL": "https://id.example.test/certs"})


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_pr_6_the_embedded_run_s_ui_decodes_with_its_static_token_and_nobody_else_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """worker.py's embedded run: it writes .data/codec-token (0600) and points its UI at the codec server with
    that token in the path; what the UI's settings tell the browser decodes, from the UI's origin; a program
    without the token gets 401."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XINGTU_DATA_DIR", str(tmp_path / ".data"))  # the run's data directory (starter/config.py)
    monkeypatch.delenv("CODEC_TOKEN_FILE", raising=False)
    settings = worker.Settings(address=None, namespace="default", task_queue="q", ledger_dsn=str(tmp_path / "l.db"),
                               port=free_port(), ui_port=free_port(), codec_port=free_port())
    keys = KeyRing.parse(KEY_1)
    env = await worker.start_embedded_server(settings, keys)
    server = worker.start_codec_server(settings, keys)
    try:
        assert server is not None
        token_file = tmp_path / ".data" / "codec-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        ui = f"http://localhost:{settings.ui_port}"
        ui_settings = await asyncio.to_thread(get_json, f"http://127.0.0.1:{settings.ui_port}/api/v1/settings")
        endpoint = ui_settings["Codec"]["Endpoint"]
        assert endpoint == f"http://localhost:{settings.codec_port}/local/{token_file.read_text().strip()}"
        personal, _, flagged = bodies()
        status, headers, answer = post(f"{endpoint}/decode", personal, headers={"Origin": ui, "X-Namespace": "default"})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == ui
        assert [json_format.ParseDict(p, Payload()) for p in json.loads(answer)["payloads"]] == flagged
        assert post(f"{server.url}/decode", personal)[0] == 401
        assert post(f"{server.url}/local/not-the-token-000000/decode", personal)[0] == 401
    finally:
        if server is not None:
            server.shutdown()
        await env.shutdown()
