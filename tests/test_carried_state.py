"""The state a workflow carries into its next run stays far from the 2 MB payload limit (DESIGN "Limits that shape the
design"; docs/bench.md "Limits found" 2; issue 8: no workflow may come near a server limit).

MountTaskWorkflow keeps one row per mounted piece (revocation, repeat reports and the end-of-period fan-out need the
register), so the input of a run that continued as new grows with the task: ~190 bytes a piece as JSON. From 16 KiB
up, such an input travels zlib-compressed (`json/zlib`, workflows/contract/converter.py); these tests measure it at
10,000 pieces, run a real continue-as-new through it, and check that the UI's codec server shows it as JSON."""

from __future__ import annotations

import json
import random
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from starter import client as api
from starter.codec import KeyRing
from starter.codec_auth import CodecAuth
from starter.codec_server import start_in_thread
from tests import replay_helpers as rh
from tests.conftest import Ctx
from tests.helpers import business_now, creator, mount, published_task, task_seen
from tests.privacy_helpers import post
from workflows.contract import converter
from workflows.contract import mount_task as mt
from workflows.contract.converter import COMPRESSED_ENCODING, data_converter
from workflows.contract.names import mount_task_id
from workflows.mount_task import MountTaskWorkflow
from workflows.mounted_content import MountedContentWorkflow
from workflows.rules import run_length

PAYLOAD_LIMIT = 2 * 1024 * 1024  # the server refuses a larger payload (limit.blobSize.error)
PAYLOAD_WARNING = 512 * 1024  # the SDK and the server warn from here (TMPRL1103, limit.blobSize.warn)
ZLIB = COMPRESSED_ENCODING.encode()


def large_task(pieces: int, creators: int, *, uuids: bool, seed: int = 8) -> mt.MountTaskState:
    """A task at the end of its life: every piece settled with its own fee (the largest form of the register)."""
    rng = random.Random(seed)

    def new_id(prefix: str, i: int) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128))) if uuids else f"{prefix}{i:05d}"

    start = datetime(2026, 11, 1, tzinfo=UTC)
    state = mt.MountTaskState(task_id="t-large", stage=mt.TaskStage.ENDED, client_id="client-1")
    creator_ids = [new_id("cr", i) for i in range(creators)]
    for creator_id in creator_ids:
        state.creators[creator_id] = mt.CreatorEntry(creator_id=creator_id,
                                                     payee_account=f"creator:{creator_id}:payable", joined_at=start)
    for i in range(pieces):
        content_id = new_id("c", i)
        state.pieces[content_id] = mt.PieceEntry(
            content_id=content_id, creator_id=creator_ids[i % creators],
            mounted_at=start + timedelta(seconds=rng.randrange(14 * 86_400)), status="settled",
            fee_fen=rng.randrange(100_000), platform_fee_fen=rng.randrange(10_000))
    state.pieces_open = 0
    return state


@pytest.mark.parametrize(("uuids", "bound"), [(False, PAYLOAD_WARNING), (True, PAYLOAD_LIMIT // 2)])
def test_a_task_of_10000_pieces_carries_its_state_far_below_the_payload_limit(uuids: bool, bound: int) -> None:
    state = large_task(10_000, 1_000, uuids=uuids)
    carried = mt.MountTaskInput(task_id=state.task_id, carried_state=state)
    [payload] = data_converter.payload_converter.to_payloads([carried])
    plain = len(state.model_dump_json())
    assert payload.metadata["encoding"] == ZLIB
    # Short ids (the bench's): 1.84 MB of JSON -> ~234 KB, under the warning. Random UUIDs and amounts (the worst
    # case for compression): 2.83 MB, over the limit as JSON -> ~696 KB, under half the limit.
    assert plain > (PAYLOAD_LIMIT if uuids else 1_800_000)
    assert len(payload.data) < bound
    [back] = data_converter.payload_converter.from_payloads([payload], [mt.MountTaskInput])
    assert back == carried


def test_a_small_carried_state_and_every_other_payload_stay_plain_json() -> None:
    small = mt.MountTaskInput(task_id="t1", carried_state=large_task(20, 5, uuids=False))
    big_query_answer = large_task(2_000, 100, uuids=False)  # not an input: other clients read it as JSON
    payloads = data_converter.payload_converter.to_payloads([small, big_query_answer, mt.MountTaskInput(task_id="t")])
    assert [p.metadata["encoding"] for p in payloads] == [b"json/plain"] * 3
    assert len(payloads[1].data) > converter.COMPRESS_CARRIED_FROM_BYTES


def test_a_compressed_payload_that_inflates_too_far_or_is_cut_short_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    carried = mt.MountTaskInput(task_id="t1", carried_state=large_task(500, 10, uuids=False))
    [payload] = data_converter.payload_converter.to_payloads([carried])
    assert payload.metadata["encoding"] == ZLIB
    cut = Payload(metadata=payload.metadata, data=payload.data[: len(payload.data) // 2])
    with pytest.raises(ApplicationError, match=r"json/zlib payload .* cut short") as refused:
        data_converter.payload_converter.from_payloads([cut], [mt.MountTaskInput])
    assert refused.value.type == "InvalidPayload" and refused.value.non_retryable
    monkeypatch.setattr(converter, "MAX_INFLATED_BYTES", 10_000)
    with pytest.raises(ApplicationError, match="inflates past 10000 bytes"):
        data_converter.payload_converter.from_payloads([payload], [mt.MountTaskInput])


def test_the_codec_server_shows_a_compressed_carried_state_as_json() -> None:
    carried = mt.MountTaskInput(task_id="t1", carried_state=large_task(500, 10, uuids=False))
    [payload] = data_converter.payload_converter.to_payloads([carried])
    token = "carried-state-test-token"  # PR-6: the codec server serves bearers of a token only
    server = start_in_thread(KeyRing(), 0, origins=[], auth=CodecAuth(static_tokens=[token]))
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        body = json.dumps({"payloads": [json_format.MessageToDict(payload)]}).encode()
        status, _, answer = post(f"{server.url}/decode", body, headers={"Content-Type": "application/json", **bearer})
        [shown] = [json_format.ParseDict(p, Payload()) for p in json.loads(answer)["payloads"]]
        assert status == 200 and shown.metadata["encoding"] == b"json/plain"
        assert json.loads(shown.data) == json.loads(carried.model_dump_json())
        bomb = Payload(metadata={"encoding": ZLIB}, data=zlib.compress(b"[" * 1000)[:5])
        status, _, answer = post(f"{server.url}/decode", json.dumps(
            {"payloads": [json_format.MessageToDict(bomb)]}).encode(), headers=bearer)
        assert status == 422 and "cut short" in json.loads(answer)["error"]
    finally:
        server.shutdown()


async def test_a_task_continued_as_new_with_its_state_compressed_goes_on_where_it_was(
        ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    """AM-6 after a continue-as-new: the register of pieces and creators arrives whole through a `json/zlib` input
    (compression forced from 0 bytes, the per-run bound forced to 3 messages, in this process where the worker runs)."""
    monkeypatch.setattr(run_length, "TASK_MESSAGES_PER_RUN", 3)
    monkeypatch.setattr(converter, "COMPRESS_CARRIED_FROM_BYTES", 0)
    task = f"t-carry-{ctx.uid}"
    workflow_id = mount_task_id(task)
    await published_task(ctx, task)
    creator(ctx.a, "cr-1")
    await api.join(ctx.client, task, "cr-1")
    now = await business_now(ctx)
    await mount(ctx, task, "p1", "cr-1", now)
    first_run = await rh.first_run_id(ctx.client, workflow_id)
    before = await task_seen(ctx, task)
    await mount(ctx, task, "p2", "cr-1", now)  # the third message: the run continues as new
    await rh.until_new_run(ctx.client, workflow_id, first_run)
    after = await task_seen(ctx, task)

    latest = await ctx.client.get_workflow_handle(workflow_id).fetch_history()
    started = latest.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id == first_run
    [carried] = started.input.payloads
    assert carried.metadata["encoding"] == ZLIB
    assert (sorted(after.pieces), list(after.creators), after.view.pieces.open) == (["p1", "p2"], ["cr-1"], 2)
    assert after.pieces["p1"] == before.pieces["p1"] and after.creators == before.creators
    assert (after.money.frozen_fen, after.budget_fen, after.period_end_at) == (
        before.money.frozen_fen, before.budget_fen, before.period_end_at)
    # The new run checks new reports against the carried register: p1 again for another creator is refused,
    # the same report again is answered, a new piece is taken.
    creator(ctx.a, "cr-2")
    await api.join(ctx.client, task, "cr-2")
    with pytest.raises(Exception, match="content_id: p1 is already mounted"):
        await mount(ctx, task, "p1", "cr-2", now)
    assert (await mount(ctx, task, "p1", "cr-1", now)).content_id == "p1"
    assert (await mount(ctx, task, "p3", "cr-2", now)).content_id == "p3"

    first = await ctx.client.get_workflow_handle(workflow_id, run_id=first_run).fetch_history()
    replayer = rh.replayer(MountTaskWorkflow, MountedContentWorkflow)
    for history in (first, await ctx.client.get_workflow_handle(workflow_id).fetch_history()):
        await replayer.replay_workflow(history)


def test_am_2_a_state_carried_before_the_published_terms_reads_them_from_its_request() -> None:
    """Runs that continued as new before MountTaskState.published existed carry the publication's fields flat
    (request, client_id, period_start_at, period_end_at): the next run reads the same terms from the request."""
    start, end = "2026-12-01T10:00:00+08:00", "2026-12-31T10:00:00+08:00"
    request = {"task_id": "t-old", "client_id": "client-1", "budget_fen": 100_000, "period_start_at": start,
               "period_end_at": end, "billing_rule": {"conversion_event": "download", "price_fen": 250}}
    flat = {"task_id": "t-old", "stage": "published", "client_id": "client-1", "request": request,
            "period_start_at": start, "period_end_at": end, "budget_fen": 100_000}
    carried = mt.MountTaskInput.model_validate_json(json.dumps({"task_id": "t-old", "carried_state": flat}))
    assert carried.carried_state is not None
    published = carried.carried_state.published
    assert published is not None
    assert (published.client_id, published.budget_fen, published.price_fen) == ("client-1", 100_000, 250)
    assert (published.period_start_at, published.period_end_at) == (datetime.fromisoformat(start),
                                                                     datetime.fromisoformat(end))
    assert published.terms == mt.PublishTaskRequest.model_validate(request)
    # A draft carried flat has no terms yet.
    draft = mt.MountTaskState.model_validate({"task_id": "t-draft", "stage": "draft"})
    assert draft.published is None
