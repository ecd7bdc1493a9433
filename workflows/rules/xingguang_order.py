"""XG-1 / XG-2 / R-8: the order form of a Xingguang task. Lists every missing or invalid field and every forbidden
targeting label; an empty list means the order may be accepted (if the client's balance covers the freeze)."""

from __future__ import annotations

from datetime import datetime

from workflows.contract.xingguang import OrderRequest
from workflows.rules.clock import business_time
from workflows.rules.eligibility import CreatorFacts, creator_join_refusals
from workflows.rules.xingguang_targeting import targeting_refusals


def order_problems(request: OrderRequest, now: datetime) -> list[str]:
    problems: list[str] = []

    def missing(field: str, value: object) -> bool:
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(f"{field}: required")
            return True
        return False

    def positive(field: str, value: int | None) -> None:
        if not missing(field, value) and value == 0:
            problems.append(f"{field}: must be greater than 0")

    missing("content_requirements", request.content_requirements)
    if not missing("targeting_labels", request.targeting_labels) and request.targeting_labels is not None:
        if not request.targeting_labels:
            problems.append("targeting_labels: at least one label is required")
        blank = [i for i, label in enumerate(request.targeting_labels) if not label.strip()]
        if blank:
            problems.append(f"targeting_labels: labels at positions {blank} are empty")
        problems.extend(targeting_refusals(request.targeting_labels))
    positive("placement_budget_fen", request.placement_budget_fen)
    positive("unit_price_fen", request.unit_price_fen)
    if (request.unit_price_fen and request.placement_budget_fen
            and request.unit_price_fen > request.placement_budget_fen):
        problems.append(f"unit_price_fen: {request.unit_price_fen} is above the placement budget "
                        f"{request.placement_budget_fen}: not one event could be billed")
    start_missing = missing("billing_start_at", request.billing_start_at)
    end_missing = missing("billing_end_at", request.billing_end_at)
    if not start_missing and not end_missing and request.billing_start_at and request.billing_end_at:
        if request.billing_start_at >= request.billing_end_at:
            problems.append("billing_end_at: must be after billing_start_at "
                            f"({business_time(request.billing_end_at)} <= {business_time(request.billing_start_at)})")
        elif request.billing_end_at <= now:
            problems.append(f"billing_end_at: the billing period is already over "
                            f"({business_time(request.billing_end_at)})")
    positive("creator_earnings_budget_fen", request.creator_earnings_budget_fen)
    waived = bool(request.platform_fee_waiver and request.platform_fee_waiver.strip())
    if request.platform_fee_rate_bp is None and not waived:
        problems.append("platform_fee_rate_bp: required unless platform_fee_waiver names the promotion")
    if waived and request.platform_fee_rate_bp:
        problems.append("platform_fee_rate_bp: must be 0 or absent when the platform fee is waived")
    missing("provider_fee_rate_bp", request.provider_fee_rate_bp)
    confirms = (not missing("client_confirms_content", request.client_confirms_content)
                and request.client_confirms_content)
    if (confirms and not missing("client_review_hours", request.client_review_hours)
            and request.client_review_hours == 0):
        problems.append("client_review_hours: must be at least 1 when the client confirms content")
    return problems


def creator_selection_refusals(facts: CreatorFacts) -> list[str]:
    """XG-4: who a provider may select. The authorized-mount checks (AM-4) apply, except the mount-task bar."""
    return creator_join_refusals(facts.model_copy(update={"mount_barred": False}))
