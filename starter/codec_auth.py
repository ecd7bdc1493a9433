"""Who may read personal payloads through the codec server (PR-6), and the audit line of every decode.

CORS keeps other web pages away from the codec server, not other programs: every /decode and /encode needs a
bearer token, one of
- a JWT signed by the operators' identity provider: verified against its JWKS (CODEC_JWKS_URL) or a PEM public key
  (CODEC_JWT_PUBLIC_KEY_FILE), with asymmetric algorithms only (a symmetric "HS" token signed with a public key is
  refused), `exp`, `sub`, the issuer CODEC_JWT_ISSUER and the audience CODEC_JWT_AUDIENCE. Personal payloads are
  decoded only for a token whose role claim (CODEC_JWT_ROLE_CLAIM, default `roles`; a dotted path such as
  `realm_access.roles`; a list or a space-separated string) holds CODEC_JWT_ROLE (default
  `personal-data-reader`); without it the caller gets 403 for a batch holding one, and plain payloads still. The
  Temporal UI sends the signed-in operator's token with `codec.passAccessToken: true` (TEMPORAL_CODEC_PASS_ACCESS_TOKEN
  in the UI container; the UI then insists on an https endpoint).
- a static token read from a file (CODEC_TOKEN_FILE): for local runs. The embedded run of worker.py writes a random
  one to .data/codec-token (mode 0600). The dev server's UI cannot send a header (it has no login and only an
  endpoint setting), so that server also accepts the static token as the first segment after `/local/` in the URL
  (`--ui-codec-endpoint http://localhost:8081/local/<token>`; the protocol routes on the last segment only). The
  token is then as secret as the UI's settings, which only programs on this machine can read: the same reach as
  the UI itself, which shows every workflow. Never use the path form for a server reachable from elsewhere.

A refusal is 401 (no token, a bad one: signature, expiry, issuer, audience) or 403 (no role), with the reason in
the body and in `WWW-Authenticate`. Every decode, served or refused, writes one structured line to the logger
`codec.audit`: caller (JWT `sub`, or `static-token`), how it authenticated, namespace, workflow id (when the
caller sends X-Workflow-Id), payload counts, the key ids used and the accounts whose data it was, the outcome;
never a payload value or a token.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import structlog

DEFAULT_ROLE = "personal-data-reader"
DEFAULT_ROLE_CLAIM = "roles"
DEFAULT_TOKEN_FILE = ".data/codec-token"
ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
PATH_TOKEN_PREFIX = "local"
audit = structlog.get_logger("codec.audit")


class CodecAuthError(ValueError):
    """The codec server's authentication is not configured, or configured wrongly (the message says how)."""


@dataclass(frozen=True)
class Caller:
    subject: str
    method: str  # "jwt" | "static-token"
    may_read_personal: bool


@dataclass(frozen=True)
class Refusal:
    status: int  # 401 or 403
    reason: str
    subject: str | None = None


def create_token_file(path: Path) -> bool:
    """Writes a random static token to `path` (mode 0600) unless it exists. True when created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    return True


def read_token_file(path: Path) -> str:
    token = next((line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "")
    return check_token(token, f"codec token file {path}")


def check_token(token: str, where: str) -> str:
    if len(token) < 16:
        raise CodecAuthError(f"{where}: no token of at least 16 characters in it")
    return token


@dataclass(frozen=True)
class JwtPolicy:
    issuer: str
    audience: str
    jwks_url: str | None = None
    public_key_pem: str | None = None
    role_claim: str = DEFAULT_ROLE_CLAIM
    role: str = DEFAULT_ROLE
    leeway_s: int = 30
    _jwks: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if bool(self.jwks_url) == bool(self.public_key_pem):
            raise CodecAuthError("JWT: give exactly one of CODEC_JWKS_URL and CODEC_JWT_PUBLIC_KEY_FILE")
        if not self.issuer or not self.audience:
            raise CodecAuthError("JWT: CODEC_JWT_ISSUER and CODEC_JWT_AUDIENCE are required")
        if self.jwks_url:
            object.__setattr__(self, "_jwks", jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=300,
                                                              timeout=10))

    def verify(self, token: str) -> Caller | Refusal:
        try:
            key: Any = (self._jwks.get_signing_key_from_jwt(token).key if self._jwks is not None
                        else self.public_key_pem)
            claims = jwt.decode(token, key, algorithms=ASYMMETRIC_ALGORITHMS, audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway_s,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWKClientConnectionError as error:
            return Refusal(401, f"the identity provider's keys could not be fetched: {error}")
        except jwt.InvalidAudienceError:
            return Refusal(401, f"token audience is not {self.audience!r}")
        except jwt.InvalidIssuerError:
            return Refusal(401, f"token issuer is not {self.issuer!r}")
        except jwt.ExpiredSignatureError:
            return Refusal(401, "token expired")
        except (jwt.PyJWTError, ValueError) as error:
            return Refusal(401, f"invalid token: {error}")
        roles: Any = claims
        for part in self.role_claim.split("."):
            roles = roles.get(part) if isinstance(roles, dict) else None
        granted = roles.split() if isinstance(roles, str) else roles if isinstance(roles, list) else []
        return Caller(subject=str(claims["sub"]), method="jwt", may_read_personal=self.role in granted)


@dataclass(frozen=True)
class CodecAuth:
    """The policy of one codec server: JWTs, static tokens, or both."""

    jwt_policy: JwtPolicy | None = None
    static_tokens: Sequence[str] = ()
    token_in_path: bool = False  # the embedded run's UI (see the module's docstring)

    def __post_init__(self) -> None:
        if self.jwt_policy is None and not self.static_tokens:
            raise CodecAuthError("the codec server authenticates nobody: set CODEC_JWKS_URL or "
                                 "CODEC_JWT_PUBLIC_KEY_FILE with CODEC_JWT_ISSUER and CODEC_JWT_AUDIENCE, or "
                                 "CODEC_TOKEN_FILE (README: Personal data and the codec server)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, token_file: str | None = None,
                 token_in_path: bool = False) -> CodecAuth:
        env = os.environ if env is None else env
        policy = None
        if env.get("CODEC_JWKS_URL") or env.get("CODEC_JWT_PUBLIC_KEY_FILE"):
            pem_file = env.get("CODEC_JWT_PUBLIC_KEY_FILE")
            policy = JwtPolicy(issuer=env.get("CODEC_JWT_ISSUER", ""), audience=env.get("CODEC_JWT_AUDIENCE", ""),
                               jwks_url=env.get("CODEC_JWKS_URL") or None,
                               public_key_pem=Path(pem_file).read_text(encoding="utf-8") if pem_file else None,
                               role_claim=env.get("CODEC_JWT_ROLE_CLAIM") or DEFAULT_ROLE_CLAIM,
                               role=env.get("CODEC_JWT_ROLE") or DEFAULT_ROLE)
        path = token_file or env.get("CODEC_TOKEN_FILE")
        tokens = [read_token_file(Path(path))] if path else []
        if env.get("CODEC_TOKEN"):  # a deployment's secret in the environment (docker-compose.yml)
            tokens.append(check_token(env["CODEC_TOKEN"].strip(), "CODEC_TOKEN"))
        return cls(policy, tokens, token_in_path)

    @property
    def role_claim_name(self) -> str:
        return self.jwt_policy.role_claim if self.jwt_policy else DEFAULT_ROLE_CLAIM

    @property
    def role_name(self) -> str:
        return self.jwt_policy.role if self.jwt_policy else DEFAULT_ROLE

    def split_path(self, path: str) -> tuple[str | None, list[str]]:
        """(the token carried in the path, if this server takes one there; the remaining segments)."""
        segments = [s for s in path.split("?", 1)[0].split("/") if s]
        if self.token_in_path and len(segments) >= 2 and segments[0] == PATH_TOKEN_PREFIX:
            return segments[1], segments[2:]
        return None, segments

    def authenticate(self, authorization: str | None, path_token: str | None) -> Caller | Refusal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not token and path_token:
            token = path_token
        if not token:
            return Refusal(401, "no bearer token: send Authorization: Bearer <token>")
        if any(hmac.compare_digest(token.encode(), known.encode()) for known in self.static_tokens):
            return Caller(subject="static-token", method="static-token", may_read_personal=True)
        if self.jwt_policy is None or token.count(".") != 2:
            return Refusal(401, "unknown token")
        return self.jwt_policy.verify(token)
