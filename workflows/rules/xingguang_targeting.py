"""XG-2: targeting labels the privacy annex (XG 附件3) forbids, kept as data.

A targeting label is `dimension` or `dimension:value` (e.g. `interest:games`, `age:18-24`). The annex forbids three
categories; each is listed below with the label dimensions that fall in it. A label is forbidden when its dimension
(case and separators normalised) is one of them. Adding a dimension is a data change here, tested in
tests/test_xg_rules.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForbiddenCategory:
    code: str
    description: str
    dimensions: frozenset[str]


FORBIDDEN_CATEGORIES: tuple[ForbiddenCategory, ...] = (
    ForbiddenCategory(
        "real_identity", "reveals the audience's real identity",
        frozenset({"name", "real_name", "id_number", "id_card", "passport_number", "phone_number", "mobile",
                   "email", "home_address", "device_owner_name", "license_plate", "face_id"}),
    ),
    ForbiddenCategory(
        "personal_hardship", "about the data subject's personal hardship",
        frozenset({"debt", "overdue_loan", "bankruptcy", "unemployed", "low_income", "poverty", "serious_illness",
                   "disease", "medical_condition", "mental_health", "bereavement", "divorce", "gambling_addiction",
                   "criminal_record", "homeless"}),
    ),
    ForbiddenCategory(
        "bias_or_discrimination", "biased or discriminatory",
        frozenset({"ethnicity", "race", "religion", "sexual_orientation", "disability", "hukou",
                   "region_of_origin", "skin_colour", "political_affiliation", "caste"}),
    ),
)

_BY_DIMENSION = {dim: cat for cat in FORBIDDEN_CATEGORIES for dim in cat.dimensions}


def _dimension(label: str) -> str:
    head = label.split(":", 1)[0]
    return "_".join(head.strip().lower().replace("-", " ").replace(".", " ").split())


def forbidden_category(label: str) -> ForbiddenCategory | None:
    return _BY_DIMENSION.get(_dimension(label))


def targeting_refusals(labels: list[str]) -> list[str]:
    """XG-2: one reason per offending label, in the order given (a label repeated is named once)."""
    reasons: list[str] = []
    seen: set[str] = set()
    for label in labels:
        category = forbidden_category(label)
        if category is not None and label not in seen:
            seen.add(label)
            reasons.append(f'targeting_labels: "{label}" is forbidden by the privacy annex '
                           f"({category.code}: {category.description})")
    return reasons
