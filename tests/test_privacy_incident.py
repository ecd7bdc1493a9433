"""PR-7 / R-10: SecurityIncidentWorkflow (`incident:{incident_id}`) tells every affected user within 72 hours of
confirmation, through the notification activity (idempotent per account), or escalates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.notifications import Notifications, incident_notice_key
from starter import privacy as api
from starter.client import Refused
from tests.conftest import Ctx
from tests.helpers import business_now, finish
from tests.privacy_helpers import eventually, person, vault
from workflows.contract import security_incident as inc
from workflows.contract.names import security_incident_id

SECOND = timedelta(seconds=1)
NOTICE = inc.NoticeParts(
    what_happened="a partner's API key leaked; phone numbers of some accounts may have been read",
    actions_taken="the key was revoked and access logs are under review",
    user_advice="be wary of calls claiming to be platform staff; never share verification codes",
    remedy="a year of free account-security monitoring")


def outbox(ctx: Ctx, incident_id: str) -> list[dict[str, object]]:
    return Notifications(ctx.a.db, vault(ctx)).sent(f"incident:{incident_id}:")


class TestPR7R10Incidents:
    async def test_r_10_notices_with_the_four_parts_go_to_each_affected_account_once(self, ctx: Ctx) -> None:
        accounts = [f"a{n}-{ctx.uid}" for n in range(3)]
        for account in accounts:
            person(ctx, account)
        now = await business_now(ctx)
        incident = f"i-{ctx.uid}"
        await api.open_incident(ctx.client, inc.SecurityIncidentInput(
            incident_id=incident, opened_by="sec-1", summary="API key leak", notice=NOTICE,
            affected_account_ids=[*accounts, accounts[0]], confirmed_at=now), ctx.task_queue)
        state = await eventually(lambda: api.incident_state(ctx.client, incident),
                                 lambda s: s.stage is inc.IncidentStage.NOTIFIED, "notices out")
        assert state.notices_due_at == now + timedelta(hours=72)
        assert sorted(state.notified) == sorted(accounts) and state.undeliverable == []
        sent = outbox(ctx, incident)
        assert [n["key"] for n in sent] == sorted(incident_notice_key(incident, a) for a in accounts)
        for notice in sent:
            body = notice["body"]
            assert isinstance(body, dict)
            assert {k: body[k] for k in ("what_happened", "actions_taken", "user_advice", "remedy")} == \
                NOTICE.model_dump()
        # Idempotent per account: the same notice again sends nothing.
        again = Notifications(ctx.a.db, vault(ctx)).send(incident_notice_key(incident, accounts[0]), accounts[0],
                                                          "security_incident", {"x": "y"})
        assert again == "duplicate" and len(outbox(ctx, incident)) == 3
        closed = await api.incident_update(ctx.client, incident, "report_to_regulator", inc.ReportToRegulator(
            reported_by="sec-1", regulator="CAC provincial office", reference="2026-INC-17", reported_at=now))
        assert closed.regulator_report is not None
        result = await finish(ctx, security_incident_id(incident), inc.SecurityIncidentView)
        assert (result.stage, result.escalated, result.escalated_at) == (inc.IncidentStage.CLOSED, False, None)

    async def test_r_10_unreachable_users_escalate_at_72_hours_until_an_announcement(self, ctx: Ctx) -> None:
        reachable, unreachable = f"a-{ctx.uid}", f"b-{ctx.uid}"
        person(ctx, reachable)
        person(ctx, unreachable, phone=False, email=False)  # no contact left on file
        incident = f"i-{ctx.uid}"
        await api.open_incident(ctx.client, inc.SecurityIncidentInput(
            incident_id=incident, opened_by="sec-1", summary="leak", notice=NOTICE,
            affected_account_ids=[reachable, unreachable]), ctx.task_queue)
        waiting = await api.incident_state(ctx.client, incident)
        assert (waiting.stage, waiting.notices_due_at, waiting.notified) == (
            inc.IncidentStage.AWAITING_CONFIRMATION, None, [])
        confirmed_at = await business_now(ctx)
        confirmed = await api.incident_update(ctx.client, incident, "confirm", inc.ConfirmIncident(
            confirmed_by="sec-2", confirmed_at=confirmed_at))
        assert confirmed.notices_due_at == confirmed_at + timedelta(hours=72)
        state = await eventually(lambda: api.incident_state(ctx.client, incident),
                                 lambda s: s.undeliverable == [unreachable], "one undeliverable")
        assert state.notified == [reachable] and state.notices_due_at is not None
        await ctx.env.sleep((state.notices_due_at - await ctx.env.get_current_time()).total_seconds() - 5)
        assert not (await api.incident_state(ctx.client, incident)).escalated
        await ctx.env.sleep(10)
        escalated = await eventually(lambda: api.incident_state(ctx.client, incident), lambda s: s.escalated,
                                     "escalated at 72 hours")
        assert escalated.escalated_at is not None
        assert state.notices_due_at <= escalated.escalated_at < state.notices_due_at + 2 * SECOND
        with pytest.raises(Refused, match="confirmed"):
            await api.incident_update(ctx.client, incident, "confirm", inc.ConfirmIncident(
                confirmed_by="sec-2", confirmed_at=confirmed_at))
        now = await business_now(ctx)
        await api.incident_update(ctx.client, incident, "publish_announcement", inc.PublishAnnouncement(
            published_by="sec-1", reason="no contact on file for some users", channel="site banner + app notice",
            published_at=now))
        await api.incident_update(ctx.client, incident, "report_to_regulator", inc.ReportToRegulator(
            reported_by="sec-1", regulator="CAC", reference="R-1", reported_at=now))
        result = await finish(ctx, security_incident_id(incident), inc.SecurityIncidentView)
        assert result.stage is inc.IncidentStage.CLOSED and result.announcement is not None
        assert result.escalated_at == escalated.escalated_at and result.notices_completed_at is not None
        assert [n["account_id"] for n in outbox(ctx, incident)] == [reachable]

    def test_pr_7_a_notice_missing_a_part_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="user_advice"):
            inc.NoticeParts(what_happened="x", actions_taken="y", user_advice="")

    async def test_r_10_an_announcement_replaces_the_notices_not_yet_sent(self, ctx: Ctx) -> None:
        incident = f"i-{ctx.uid}"
        accounts = [f"a{n}-{ctx.uid}" for n in range(3)]
        await api.open_incident(ctx.client, inc.SecurityIncidentInput(
            incident_id=incident, opened_by="sec-1", summary="leak", notice=NOTICE,
            affected_account_ids=accounts), ctx.task_queue)  # not confirmed: nothing is sent yet
        now = await business_now(ctx)
        with pytest.raises(Refused, match="confirm the incident"):
            await api.incident_update(ctx.client, incident, "publish_announcement", inc.PublishAnnouncement(
                published_by="sec-1", reason="too many to reach", channel="press release", published_at=now))
        await ctx.client.get_workflow_handle(security_incident_id(incident)).execute_update(
            "confirm", inc.ConfirmIncident(confirmed_by="sec-2", confirmed_at=now),
            result_type=inc.SecurityIncidentView)
        announced = await api.incident_update(ctx.client, incident, "publish_announcement", inc.PublishAnnouncement(
            published_by="sec-1", reason="too many to reach one by one", channel="press release", published_at=now))
        assert announced.announcement is not None
        state = await eventually(lambda: api.incident_state(ctx.client, incident),
                                 lambda s: s.stage is inc.IncidentStage.NOTIFIED, "told by announcement")
        assert state.notices_completed_at is not None and not state.escalated
        assert len(state.notified) == len(outbox(ctx, incident)) <= len(accounts)


class TestR10RemedyRequired:
    async def test_r_10_a_notice_without_its_remedy_is_refused_and_nothing_is_sent(self, ctx: Ctx) -> None:
        account, incident = f"a-{ctx.uid}", f"i-{ctx.uid}"
        person(ctx, account)
        now = await business_now(ctx)
        for remedy in (None, "  "):
            with pytest.raises(Refused) as refusal:
                await api.open_incident(ctx.client, inc.SecurityIncidentInput(
                    incident_id=incident, opened_by="sec-1", summary="API key leak",
                    notice=NOTICE.model_copy(update={"remedy": remedy}), affected_account_ids=[account],
                    confirmed_at=now), ctx.task_queue)
            assert refusal.value.kind == "IncidentNoticeRefused"
            assert refusal.value.reasons == [('notice.remedy: required (PR-7, R-10: say "none" when no remedy is '
                                             'offered)')]
        # The workflow refuses it too, for a caller that starts it directly.
        handle = await ctx.client.start_workflow(
            "SecurityIncidentWorkflow", inc.SecurityIncidentInput(
                incident_id=incident, opened_by="sec-1", summary="API key leak",
                notice=NOTICE.model_copy(update={"remedy": None}), affected_account_ids=[account],
                confirmed_at=now), id=security_incident_id(incident), task_queue=ctx.task_queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.type == "IncidentNoticeRefused"
        assert outbox(ctx, incident) == []
        state = await api.open_incident(ctx.client, inc.SecurityIncidentInput(
            incident_id=f"{incident}-2", opened_by="sec-1", summary="API key leak",
            notice=NOTICE.model_copy(update={"remedy": "none"}), affected_account_ids=[account], confirmed_at=now),
            ctx.task_queue)
        done = await eventually(lambda: api.incident_state(ctx.client, f"{incident}-2"),
                                lambda s: s.stage is inc.IncidentStage.NOTIFIED, "notices out")
        assert state is not None and done.notified == [account]
        assert [n["body"]["remedy"] for n in outbox(ctx, f"{incident}-2")] == ["none"]  # type: ignore[index]
