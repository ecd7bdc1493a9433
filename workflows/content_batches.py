"""A mounted piece's batches kept in the ledger's database (issue 21): a mixin of MountedContentWorkflow.

Pieces that record BATCHES_PATCH at their start keep every batch they receive in the database
(activities/content_batches.py), so their state does not grow with their conversions. The handlers queue what
arrives (`incoming`, `incoming_voids`) and mark when the counting interval or a freeze moved (`rejudge`); the run
loop hands all of it to one activity, which records, voids, gives back and accrues in one transaction, judged by
the rule the workflow judges by (workflows/rules/counting.py), and answers the piece's totals. The state keeps the
last batches received (`batches`, for the view), the counts and what is queued: a run holds at most its bound of
messages, so what continues as new stays small. Older pieces keep every batch in their state
(mounted_content.py's own accrual); both paths grant the same batches the same money.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ports import content_batches as batches_port
    from ports.content_batches import GiveBack, ReconcileBatches
    from workflows.contract import mounted_content as c
    from workflows.contract import views
    from workflows.rules.counting import CountingRule, FreezeSpan

from workflows import metrics

BATCHES_PATCH = "content-batches-in-database"


class BatchesInDatabase:
    s: c.MountedContentState
    _resolving: bool

    def _fee_open(self) -> bool:
        raise NotImplementedError

    async def _budget_used_up(self, exhausted_at: datetime) -> None:
        raise NotImplementedError

    def _counting_rule(self) -> CountingRule:
        s = self.s
        return CountingRule(
            mounted_at=s.mounted_at, counting_stops_at=s.counting_stops_at, budget_exhausted_at=s.budget_exhausted_at,
            disposed=s.disposed_at is not None,
            freezes=[FreezeSpan(frozen_at=f.frozen_at, resumed_at=f.resumed_at, withdrawn=f.withdrawn)
                     for f in s.counting_freezes])

    def _queue_batch(self, batch: c.ConversionBatch) -> None:
        """R-1: a repeat counts once (the database decides for batches of earlier runs); R-2: late is kept."""
        s = self.s
        if batch.event_id in s.batches or any(b.event_id == batch.event_id for b in s.incoming):
            return
        late = not self._fee_open()
        if late:
            workflow.logger.info("batch %s arrived after settlement or a dispute resolution: recorded as late",
                                 batch.event_id)
        s.incoming.append(c.IncomingBatch(event_id=batch.event_id, count=batch.count,
                                          occurred_at=batch.occurred_at, cheating=batch.cheating, late=late))

    def _queue_void(self, event_id: str) -> None:
        if event_id not in self.s.incoming_voids:
            self.s.incoming_voids.append(event_id)

    def _batches_queued(self) -> bool:
        s = self.s
        return bool(s.incoming or s.incoming_voids or s.rejudge)

    async def _reconcile_all(self) -> None:
        while self._batches_queued() and not self._resolving:
            await self._reconcile()

    async def _reconcile(self) -> None:
        """Hands what is queued to the database: recorded, voided, given back and accrued in one transaction."""
        s = self.s
        fixed = s.settlement is not None or s.agreed_fee_fen is not None
        if fixed:  # settled, or a resolution fixed the fee (AM-17): what is queued changes nothing now
            for batch in s.incoming:
                batch.late = True
        batches, voids, rejudge = list(s.incoming), list(s.incoming_voids), s.rejudge
        s.rejudge = False  # a handler that moves the interval meanwhile sets it again
        result = await batches_port.RECONCILE(ReconcileBatches(
            task_id=s.task_id, content_id=s.content_id, price_fen=s.price_fen, first_seq=s.batches_seq,
            batches=batches, voids=voids, rejudge=rejudge, fee_fixed=fixed,
            rule=self._counting_rule(), shown=list(s.batches) if rejudge or voids else []))
        s.incoming, s.incoming_voids = s.incoming[len(batches):], s.incoming_voids[len(voids):]
        s.batches_seq += len(batches)
        s.batches_received += result.received
        s.late_batches += result.late
        s.batches.update(result.records)
        for event_id in list(s.batches)[:-views.RECENT_BATCHES]:
            del s.batches[event_id]
        if s.agreed_fee_fen is None:
            s.counted_conversions, s.fee_fen = result.counted_conversions, result.fee_fen
        metrics.conversions("mount", counted=result.counted_now, released=result.released_now)
        if result.exhausted_at is not None:
            await self._budget_used_up(result.exhausted_at)

    async def _give_back_batches(self, dispute_id: str) -> None:
        """AM-17: the resolution's amount replaces the batches: their grants go back to the budget, once."""
        s = self.s
        given = await batches_port.GIVE_BACK(GiveBack(task_id=s.task_id, content_id=s.content_id))
        if given.batches:
            s.fee_adjustments[f"batches:{dispute_id}"] = -given.released_fen
