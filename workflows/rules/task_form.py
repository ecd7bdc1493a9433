"""AM-2: the publication form of an authorized-mount task. Lists every missing or invalid field."""

from __future__ import annotations

from datetime import datetime

from workflows.contract.mount_task import PublishTaskRequest
from workflows.rules.clock import business_time

REQUIRED_TASK_TYPE = "submission"  # 投稿
REQUIRED_SETTLEMENT_METHOD = "authorized_mount"  # 授权挂载


def task_form_problems(request: PublishTaskRequest, now: datetime) -> list[str]:
    problems: list[str] = []

    def missing(field: str, value: object) -> bool:
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(f"{field}: required")
            return True
        return False

    if not missing("task_type", request.task_type) and request.task_type != REQUIRED_TASK_TYPE:
        problems.append(f'task_type: must be "{REQUIRED_TASK_TYPE}", got "{request.task_type}"')
    if (
        not missing("settlement_method", request.settlement_method)
        and request.settlement_method != REQUIRED_SETTLEMENT_METHOD
    ):
        problems.append(
            f'settlement_method: must be "{REQUIRED_SETTLEMENT_METHOD}", got "{request.settlement_method}"'
        )
    missing("task_name", request.task_name)
    missing("task_icon_url", request.task_icon_url)
    missing("header_image_url", request.header_image_url)
    missing("component_id", request.component_id)
    if not missing("budget_fen", request.budget_fen) and request.budget_fen == 0:
        problems.append("budget_fen: must be greater than 0")
    start_missing = missing("period_start_at", request.period_start_at)
    end_missing = missing("period_end_at", request.period_end_at)
    if not start_missing and not end_missing and request.period_start_at and request.period_end_at:
        if request.period_start_at >= request.period_end_at:
            problems.append(
                "period_end_at: must be after period_start_at "
                f"({business_time(request.period_end_at)} <= {business_time(request.period_start_at)})"
            )
        elif request.period_end_at <= now:
            problems.append(f"period_end_at: the task period is already over ({business_time(request.period_end_at)})")
    rule = request.billing_rule
    if not missing("billing_rule", rule) and rule is not None:
        missing("billing_rule.conversion_event", rule.conversion_event)
        missing("billing_rule.price_fen", rule.price_fen)
    if not missing("public_days", request.public_days) and request.public_days == 0:
        problems.append("public_days: must be at least 1")
    return problems
