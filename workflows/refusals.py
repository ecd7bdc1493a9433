"""The one way a workflow refuses a command: a non-retryable ApplicationError whose `type` names the rule family
and whose details carry every reason (docs/contract.md, "Error types"). A validator that raises it rejects the
update before anything is recorded; a handler that raises it fails the update and changes nothing."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.rules.repeats import differing_fields  # the reasons of a conflicting repeat

__all__ = ["ALREADY_MOUNTED", "APPEAL_REFUSED", "CANCEL_REFUSED", "FREEZE_LIFT_REFUSED", "JOIN_REFUSED",
           "PUBLICATION_REFUSED", "RESOLUTION_REFUSED", "REVOCATION_REFUSED", "XINGGUANG_STEP_REFUSED",
           "differing_fields", "refused"]

# Rule families whose refusals were of kind ValueError before they had a type of their own.
# A report for content already mounted in the task with another creator or instant (AM-6): unlike MountRefused,
# nothing is taken down (the component is up for the accepted mount).
ALREADY_MOUNTED = "AlreadyMounted"
APPEAL_REFUSED = "AppealRefused"  # appeal, decide_appeal, mark_complex of a violation case (AM-20..22)
CANCEL_REFUSED = "CancelRefused"  # cancel of a mount task (AM-7: cancelled once, while published)
FREEZE_LIFT_REFUSED = "FreezeLiftRefused"  # lift_freeze of a violation case (AM-22)
REVOCATION_REFUSED = "RevocationRefused"  # revoke_content, revoke_all, the revoke_authorization signal (AM-14, AM-15)
XINGGUANG_STEP_REFUSED = "XingguangStepRefused"  # a Xingguang step the task's or piece's stage or fields do not fit
# Families that had a type already and now also cover what their validators refused.
JOIN_REFUSED = "JoinRefused"
PUBLICATION_REFUSED = "PublicationRefused"
RESOLUTION_REFUSED = "ResolutionRefused"


def refused(kind: str, reasons: list[str] | str) -> ApplicationError:
    """A business refusal of rule family `kind`, carrying every reason in details {"reasons": [...]}; its message
    is the reasons joined by "; " (the message callers have always read)."""
    listed = [reasons] if isinstance(reasons, str) else list(reasons)
    return ApplicationError("; ".join(listed), {"reasons": listed}, type=kind, non_retryable=True)

