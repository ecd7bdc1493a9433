"""PR-6, issue 20 items 3 and 5: the embedded run's Temporal UI, seen by headless Chromium, shows a personal value
of a workflow's history decoded through the embedded run's codec server, which it reaches with the static token
the run set up itself (.data/codec-token, in the endpoint's path); the codec server audits the call without the
value. Needs Chromium (Debian package `chromium`); skipped without it, as tests/test_ui_screenshots.py is."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from temporalio.client import Client

import worker
from activities.db import Database
from activities.subject_keys import SubjectKeys
from starter import privacy as api
from starter.codec import KeyRing, with_subject_keys
from tests.headless_chromium import Chromium, chromium_binary
from tests.privacy_helpers import KEY_1, PHONE
from workflows.contract import data_subject_request as dsr
from workflows.contract.names import data_subject_request_id
from workflows.contract.privacy import PersonalField
from workflows.rules.clock import BUSINESS_TZ

CHROMIUM = chromium_binary()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (Debian package `chromium`; .ci/run installs it)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(240)
async def test_pr_6_the_embedded_run_s_ui_decodes_a_personal_payload_in_the_browser(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XINGTU_DATA_DIR", str(tmp_path / ".data"))  # the run's data directory (starter/config.py)
    monkeypatch.delenv("CODEC_TOKEN_FILE", raising=False)
    ledger = tmp_path / "ledger.db"
    settings = worker.Settings(address=None, namespace="default", task_queue="ui-codec", ledger_dsn=str(ledger),
                               port=free_port(), ui_port=free_port(), codec_port=free_port())
    keys = KeyRing.parse(KEY_1)
    env = await worker.start_embedded_server(settings, keys)
    server = worker.start_codec_server(settings, keys)
    db = Database(str(ledger))
    try:
        # A request whose intake carries a phone number: sealed with the account's subject key in the history.
        client = Client(env.client.service_client, namespace="default",
                        data_converter=with_subject_keys(env.client.data_converter, SubjectKeys(db, keys)))
        request = dsr.DataSubjectRequestInput(
            request_id="ui-codec-1", account_id="acc-ui", kind=dsr.RequestKind.ACCESS,
            received_at=datetime.now(BUSINESS_TZ).replace(microsecond=0), intake=dsr.RequesterIntake(
                contact=dsr.GivenValue(field=PersonalField.PHONE, value=PHONE)))
        handle = await api.submit_request(client, request, settings.task_queue)  # no worker: the start is enough
        history = (await handle.fetch_history()).to_json()
        assert PHONE not in history and "encryption-key-id" in history  # sealed in the server's history
        run_id = (await handle.describe()).run_id
        assert CHROMIUM is not None
        page_url = (f"http://localhost:{settings.ui_port}/namespaces/default/workflows/"
                    f"{data_subject_request_id(request.request_id)}/{run_id}/history")
        with capture_logs() as logs, Chromium(CHROMIUM) as chromium:
            page = await asyncio.to_thread(chromium.capture, page_url, [PHONE], wait=60)
        assert not page.missing, f"the UI did not show the decoded phone number: {page.text[:2000]}"
        (tmp_path / "decoded.png").write_bytes(page.png)
        served = [e for e in logs if e.get("event") == "codec call" and e.get("outcome") == "served"]
        assert served and all(e["auth"] == "static-token" for e in served), logs
        assert any(e["personal"] >= 1 and e["data_subjects"] == ["acc-ui"] for e in served), served
        assert PHONE not in repr(logs)
    finally:
        server.shutdown()
        db.close()
        await env.shutdown()

