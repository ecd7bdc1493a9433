"""Freezes of the creator's in-flight tasks (R-12) as one mounted piece sees them: a mixin of MountedContentWorkflow.

A violation case that freezes the creator's in-flight tasks tells each of their pieces (`counting_frozen`): from
the notice instant conversions stop counting, as with a loss of visibility (AM-16), and the settlement is held
(the penalty register holds it, AM-19); which conversions a freeze excludes is workflows/rules/counting.py's.
Unlike a loss of visibility the freeze can be undone, so the piece keeps
every batch it receives meanwhile and the component stays mounted:
- batches in the freeze are not accrued against the budget; batches accrued before the piece heard of the freeze
  stay accrued while it stands (the budget is kept for them);
- `counting_resumed` with `withdrawn` (appeal upheld, AM-22 "as if it had not been made"): the batches of the
  freeze count, and are accrued now;
- `counting_resumed` otherwise (its end reached, or lifted by an operator): the batches of the freeze never count,
  and any accrued ones are given back to the budget; those after it count again.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import mounted_content as c


class CountingFreezes:
    s: c.MountedContentState
    _wake: bool

    def _fee_open(self) -> bool:
        raise NotImplementedError

    def _counts(self, record: c.BatchRecord, *, for_release: bool = False) -> bool:
        raise NotImplementedError

    @workflow.signal(name="counting_frozen")
    def counting_frozen(self, event: c.CountingFrozen) -> None:
        s = self.s
        s.messages_this_run += 1
        if not self._fee_open() or self._freeze_of(event.case_id, event.penalty_id) is not None:
            return  # settled already (nothing to freeze), or told twice
        s.counting_freezes.append(c.CountingFreeze(case_id=event.case_id, penalty_id=event.penalty_id,
                                                   frozen_at=event.frozen_at))
        s.rejudge = s.batches_in_db
        s.pending_accrual = [eid for eid in s.pending_accrual if self._counts(s.batches[eid])]
        self._wake = True

    @workflow.signal(name="counting_resumed")
    def counting_resumed(self, event: c.CountingResumed) -> None:
        s = self.s
        s.messages_this_run += 1
        freeze = self._freeze_of(event.case_id, event.penalty_id)
        if freeze is None or freeze.withdrawn or freeze.resumed_at is not None or not self._fee_open():
            return
        s.rejudge = s.batches_in_db
        if event.withdrawn:
            freeze.withdrawn = True
            s.pending_accrual += [eid for eid, b in s.batches.items()
                                  if b.counted == 0 and not b.voided and not b.late and eid not in s.pending_accrual
                                  and self._counts(b)]
        else:
            freeze.resumed_at = max(event.resumed_at, freeze.frozen_at)
        self._wake = True

    def _freeze_of(self, case_id: str, penalty_id: str) -> c.CountingFreeze | None:
        return next((f for f in self.s.counting_freezes if (f.case_id, f.penalty_id) == (case_id, penalty_id)),
                    None)
