"""Issue 22 item 4: patches retire on a schedule (docs/patches.md). The table there must name every patch the
workflow code asks for, how it asks (patched / deprecate_patch), and how many recorded histories still take each
old branch: derived here from the code and a replay of every history (tests/patch_audit.py), so a new patch, a
deprecation or a re-recorded history that changes what an old branch still carries fails until the table says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.patch_audit import old_paths, patch_ids

DOC = Path(__file__).resolve().parent.parent / "docs" / "patches.md"
ROW = re.compile(r"^\| `(?P<id>[a-z0-9-]+)` \| (?P<introduced>[^|]*) \| (?P<types>[^|]*) \| (?P<old>\d+) \| "
                 r"(?P<how>patched|deprecate_patch) \|$")


def table() -> dict[str, dict[str, str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            rows[match["id"]] = match.groupdict()
    return rows


@pytest.fixture(scope="module")
def derived_old_paths() -> dict[str, set[str]]:
    return old_paths()


def test_every_patch_in_the_code_has_a_row_and_every_row_a_patch() -> None:
    in_code, documented = patch_ids(), table()
    assert sorted(set(in_code) - set(documented)) == [], "patches missing from docs/patches.md"
    assert sorted(set(documented) - set(in_code)) == [], "rows of docs/patches.md for patches no longer in the code"
    assert {k: v["how"] for k, v in documented.items()} == in_code


def test_each_row_counts_the_histories_that_take_its_old_branch(derived_old_paths: dict[str, set[str]]) -> None:
    documented = {patch_id: int(row["old"]) for patch_id, row in table().items()}
    derived = {patch_id: len(derived_old_paths.get(patch_id, ())) for patch_id in patch_ids()}
    assert documented == derived, "update the 'histories on the old path' column (python -m tests.patch_audit)"


def test_a_deprecated_patch_leaves_no_history_on_its_old_branch(derived_old_paths: dict[str, set[str]]) -> None:
    """Step 2 of the policy: deprecating deletes the old branch, so the histories that took it go with it."""
    deprecated = [patch_id for patch_id, how in patch_ids().items() if how == "deprecate_patch"]
    assert {p: sorted(derived_old_paths.get(p, ())) for p in deprecated} == {p: [] for p in deprecated}


def test_the_watch_sees_old_branches(derived_old_paths: dict[str, set[str]]) -> None:
    """The audit itself: a history recorded before a patch is reported on its old path (the run recorded before
    the drain patch did not drain), one recorded after is not."""
    drain = derived_old_paths["task-drain-before-continue-as-new"]
    assert "mount-task-continued-as-new-before-drain-patch" in drain and "mount-task-continued-as-new" not in drain
