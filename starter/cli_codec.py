"""`python -m starter codec-server | payload-key`: the payload codec for the Temporal UI and its keys (PR-6)."""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path
from typing import Any

from starter import codec, config
from starter.cli_common import Output, global_flags

EXAMPLE = "python -m starter"


def cmd_codec_server(args: argparse.Namespace, out: Output) -> None:
    from starter.client import ledger_subject_keys
    from starter.codec_auth import CodecAuth, create_token_file
    from starter.codec_server import start_in_thread
    from telemetry import configure_logging

    configure_logging()  # the audit lines (logger codec.audit): JSON on stderr unless it is a terminal
    keys = codec.load_keys(config.payload_key_env(os.environ, config.read_state()), required=True)
    if args.create_token_file:
        create_token_file(Path(args.token_file or os.environ.get("CODEC_TOKEN_FILE") or ""))
    auth = CodecAuth.from_env(token_file=args.token_file, token_in_path=args.token_in_path)
    server = start_in_thread(keys, args.port, args.host, args.origin or codec_server_origins(), auth=auth,
                             subject_keys=lambda: ledger_subject_keys(keys))
    callers = [f"JWTs of {auth.jwt_policy.issuer} for {auth.jwt_policy.audience}"] if auth.jwt_policy else []
    callers += ["the static token" + (" (also in the path /local/<token>)" if auth.token_in_path else "")
                ] if auth.static_tokens else []
    print(f"codec server on {server.url} (POST /encode, /decode; bearer token: {' or '.join(callers)}) with key "
          f"ids {', '.join(keys.keys)} from {keys.source}; CORS for {', '.join(sorted(server.origins))}. Point the "
          f"UI at it: temporal server start-dev --ui-codec-endpoint {server.url}, or TEMPORAL_CODEC_ENDPOINT. "
          "Ctrl-C stops.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


def codec_server_origins() -> list[str]:
    from starter.codec_server import DEFAULT_ORIGINS

    listed = os.environ.get("PAYLOAD_CODEC_ORIGINS", "")
    return [o.strip() for o in listed.split(",") if o.strip()] or DEFAULT_ORIGINS


def cmd_payload_key(args: argparse.Namespace, out: Output) -> None:
    if args.init:
        created = codec.create_key_file(Path(args.init), args.id or "k1")
        print(f"{'created' if created else 'kept the existing'} payload key file {args.init}")
        return
    print(codec.new_key_entry(args.id))


def add_commands(sub: Any) -> None:
    p = sub.add_parser("codec-server", help="serve the payload codec to the Temporal UI (PR-6; needs the keys)",
                       parents=[global_flags(suppress=True)],
                       epilog=f"example:\n  CODEC_TOKEN_FILE=.data/codec-token {EXAMPLE} codec-server "
                       "--create-token-file --port 8081")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    p.add_argument("--origin", action="append", help="a UI origin allowed by CORS (repeatable; default: "
                   "PAYLOAD_CODEC_ORIGINS, else http://localhost:8233 and :8080 and their 127.0.0.1 forms)")
    p.add_argument("--token-file", help="a file holding the static bearer token (default: CODEC_TOKEN_FILE); JWTs: "
                   "CODEC_JWKS_URL or CODEC_JWT_PUBLIC_KEY_FILE, CODEC_JWT_ISSUER, CODEC_JWT_AUDIENCE")
    p.add_argument("--create-token-file", action="store_true", help="write a random token there first unless the "
                   "file exists (mode 0600)")
    p.add_argument("--token-in-path", action="store_true", help="also take the static token as /local/<token>/... "
                   "in the URL, for a UI that cannot send a header; loopback only (README)")
    p.set_defaults(run=cmd_codec_server)

    p = sub.add_parser("payload-key", help="print a new payload key entry ID:BASE64 for PAYLOAD_KEYS (rotation: "
                       "put it first, keep the old ones)", parents=[global_flags(suppress=True, init=False)],
                       epilog=f"example:\n  {EXAMPLE} payload-key --id k2026-12")
    p.add_argument("--id", help="key id (default k<UTC timestamp>)")
    p.add_argument("--init", metavar="FILE", help="write a key file FILE unless it exists (compose's first run)")
    p.set_defaults(run=cmd_payload_key)
