"""Issue 23: every `python -m starter` command, found from the parser (a new command is covered without editing this
file), given bad arguments: missing, wrong types, negative money, malformed instants, unknown enum values, garbage
JSON, unknown ids. No input reaches a traceback or the InternalError guard; the exit code is 1 (unknown id / not
reachable) or 2 (refused); with --json stdout holds exactly one JSON object `{"error": {...}}`.

Run in-process against no server (a closed port) and no ledger: the live server's answers to unknown ids are in
tests/test_cli_operations.py."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from starter import __main__ as cli
from starter.cli_common import count, fen, instant, positive_fen
from tests.cli_helpers import free_port

# Commands that take no argument and act at once (a key printed; a server started): not run without arguments.
NO_ARGUMENT_RUNS = {"payload-key", "codec-server"}


@pytest.fixture(autouse=True)
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No server (a closed port), no ledger, no payload keys, no run state file."""
    for name in ("TEMPORAL_PROFILE", "TEMPORAL_API_KEY", "TEMPORAL_NAMESPACE", "PAYLOAD_KEYS", "LEDGER_DSN",
                 "PYTHONDEVMODE", "CODEC_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("XINGTU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEDGER_DSN", str(tmp_path / "no-ledger" / "ledger.db"))
    monkeypatch.setenv("PAYLOAD_KEYS_FILE", str(tmp_path / "no-keys"))
    yield


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings]


def value_flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    globals_ = {"--address", "--namespace", "--task-queue", "--help"}
    return [a for a in parser._actions if a.option_strings and a.nargs != 0
            and not set(a.option_strings) & globals_]


def hostile_values(action: argparse.Action) -> list[str]:
    if action.choices:
        return ["bogus"]
    if action.type in (fen, positive_fen, count):
        return ["-1", "ten"]
    if action.type is instant:
        return ["2026-13-45T99:00", "2026-12-01T10:00:00"]  # malformed; no offset
    if action.type is int:
        return ["ten"]
    return ["-1", "{not json"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (argv, out, err)
    return code, out, err


def refused_in_one_shape(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    code, out, err = run([*argv, "--json"], capsys)
    assert code in (1, 2), (argv, code, out, err)
    shown = json.loads(out)  # exactly one JSON object: json.loads refuses anything after it
    assert set(shown) == {"error"}, (argv, shown)
    error = shown["error"]
    assert error["type"] != "InternalError", (argv, error)
    assert isinstance(error["message"], str) and isinstance(error["reasons"], list), (argv, error)
    return error


def test_issue_23_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for name in commands():
        code, out, _ = run([name, "--help"], capsys)
        assert code == 0 and "example" in out and "usage: python -m starter " + name in out, name


def test_issue_23_every_command_without_its_arguments_is_refused_in_one_shape(
        capsys: pytest.CaptureFixture[str]) -> None:
    for name, parser in commands().items():
        if name in NO_ARGUMENT_RUNS and not positionals(parser):
            continue
        refused_in_one_shape([name], capsys)


def test_issue_23_every_flag_of_every_command_given_garbage_is_refused_in_one_shape(
        capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0
    for name, parser in commands().items():
        if name in NO_ARGUMENT_RUNS:  # act at once on good arguments: their bad ones are below
            continue
        ids = ["no-such-id" if a.type is None else "1" for a in positionals(parser) if a.nargs != "?"]
        for action in value_flags(parser):
            for value in hostile_values(action):
                refused_in_one_shape([name, *ids, action.option_strings[0], value], capsys)
                tried += 1
    assert tried > 300  # every flag of ~60 commands


def test_issue_23_the_codec_and_key_commands_refuse_in_one_shape(capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    error = refused_in_one_shape(["payload-key", "--init", str(tmp_path / "a-file" / "keys")], capsys)
    assert error["type"] == "InvalidArguments"
    error = refused_in_one_shape(["codec-server", "--port", "ten"], capsys)
    assert error["reasons"][0]["field"] == "--port"
    assert refused_in_one_shape(["codec-server"], capsys)["type"] == "PayloadKeysInvalid"  # no keys: nothing served


def test_issue_23_r_4_negative_or_fractional_money_and_bad_instants_are_refused_naming_the_field(
        capsys: pytest.CaptureFixture[str]) -> None:
    error = refused_in_one_shape(["deposit", "cl-1", "-500", "dep-1"], capsys)
    assert error["reasons"] == [{"field": "amount_fen", "message": "-500 is negative: an amount is 0 fen or more"}]
    error = refused_in_one_shape(["xg-penalize", "xg-1", "--operator-id", "op-1", "--penalty-id", "f-1",
                                  "--action", "freeze", "--amount-fen", "-5", "--reason", "r"], capsys)
    assert [r["field"] for r in error["reasons"]] == ["amount_fen"]
    error = refused_in_one_shape(["resolve", "t-1", "c-1", "d-1", "--amount-fen", "12.5", "--operator-id", "op",
                                  "--note", "n"], capsys)
    assert [r["field"] for r in error["reasons"]] == ["amount_fen"]
    error = refused_in_one_shape(["visibility-lost", "t-1", "c-1", "--kind", "deleted", "--occurred-at",
                                  "2026-12-01T10:00:00"], capsys)
    assert error["type"] == "InvalidRequest"
    assert [r["field"] for r in error["reasons"]] == ["occurred_at"]
    error = refused_in_one_shape(["xg-pause", "xg-1", "--operator-id", "op", "--pause-id", "p", "--reason", "r",
                                  "--notice-sent-at", "now", "--changes-within-days", "3", "--piece-id", "a:b"],
                                 capsys)
    assert [r["field"] for r in error["reasons"]] == ["piece_id"]


def test_issue_23_unknown_enum_values_garbage_json_and_missing_files_are_refused(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    error = refused_in_one_shape(["xg-compensate", "xg-1", "--kind", "gift", "--cause", "whim"], capsys)
    fields = {r["field"] for r in error["reasons"]}
    assert {"kind", "cause", "operator_id", "compensation_id", "note"} <= fields
    assert not any("https://" in r["message"] for r in error["reasons"])
    error = refused_in_one_shape(["xg-order", "xg-1", "--body", "{not json"], capsys)
    assert error["type"] == "InvalidArguments" and error["reasons"][0]["field"] == "--body"
    error = refused_in_one_shape(["xg-order", "xg-1", "--body", "[1, 2]"], capsys)
    assert error["type"] == "InvalidArguments"
    error = refused_in_one_shape(["publish", str(tmp_path / "missing.json")], capsys)
    assert error["reasons"][0]["field"] == "file"
    (tmp_path / "bad.json").write_text("{\"task_id\": ")
    assert refused_in_one_shape(["publish", str(tmp_path / "bad.json")], capsys)["type"] == "InvalidArguments"
    error = refused_in_one_shape(["penalty-issue", "c-1", "--penalty", "hang_them"], capsys)
    assert error["reasons"][0]["field"] == "--penalty"
    error = refused_in_one_shape(["xg-review-materials", "x", "--approve", "nocolon"], capsys)
    assert error["reasons"][0]["field"] == "--approve"
    assert refused_in_one_shape(["no-such-command"], capsys)["type"] == "InvalidArguments"


def test_issue_23_global_flags_work_before_or_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    before = refused_in_one_shape(["--json", "state"], capsys)
    code, out, _ = run(["state", "--json"], capsys)
    assert code == 2 and json.loads(out)["error"] == before
    port = free_port()
    after = refused_in_one_shape(["state", "t-1", "--address", f"127.0.0.1:{port}"], capsys)
    assert after["type"] == "Unreachable" and f"127.0.0.1:{port}" in str(after["message"])


def test_issue_23_text_errors_are_type_message_and_a_line_per_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["xg-assign-provider", "xg-1", "--operator-id", "a:b"], capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == "InvalidRequest: the request has 2 problems"
    assert lines[1].startswith("  - operator_id: String should match pattern")
    assert lines[2] == "  - provider_id: Field required"


def examples() -> list[tuple[str, str]]:
    """(where, command line) of every example: each command's --help epilog, the README's "Try it" and table."""
    found = [(name, line.strip()) for name, parser in commands().items()
             for line in (parser.epilog or "").splitlines() if "python -m starter" in line]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    try_it = readme.split("## Try it", 1)[1].split("## ", 1)[0]
    found += [("README Try it", line.split("#")[0].replace("$py -m starter", "python -m starter"))
              for line in try_it.splitlines() if line.startswith("$py -m starter")]
    table = readme.split("## Operating it", 1)[1].split("\n## ", 1)[0]
    for row in table.splitlines():
        cells = row.split(" | ")
        if row.startswith("| `") and len(cells) == 3:
            found += [("README table", "python -m starter " + example)
                      for example in cells[2].strip(" |").strip("`").split("`, `") if "..." not in example]
    return found


def test_issue_23_every_example_in_the_help_and_the_readme_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    """...and an example of an operator action makes a request its contract model accepts."""
    import shlex

    from starter.cli_common import Action, build

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # examples/ is where the examples say
    parser = cli.build_parser()
    listed = examples()
    assert len(listed) > 80
    for where, line in listed:
        words = shlex.split(line)
        argv = words[words.index("starter") + 1:]
        args = parser.parse_args(argv)  # a bad example raises CliError here
        assert args.command == argv[0], (where, line)
        action = getattr(args.run, "__self__", None)
        if isinstance(action, Action):
            fixed = {n: getattr(args, n) for n in action.ids if n in action.model.model_fields}
            build(action.model, args, {**fixed, **(action.extra_body(args) if action.extra_body else {})})


def hostile_variants(parser: argparse.ArgumentParser, argv: list[str]) -> Iterator[list[str]]:
    """`argv` (a working example) with one value at a time made hostile: a negative or oversized number, a date
    that does not exist, an unknown choice, an id with a colon, an empty or 3,000-character text."""
    flags = parser._option_string_actions
    positional = iter(positionals(parser))
    index = 1
    while index < len(argv):
        token = argv[index]
        action = flags.get(token) if token.startswith("--") else next(positional, None)
        if action is None or action.nargs == 0:
            index += 1
            continue
        at = index + 1 if token.startswith("--") else index
        if action.choices:
            values = ["bogus"]
        elif action.type in (fen, positive_fen, count, int):
            values = ["-1", str(10**20)]
        elif action.type is instant or token.endswith("-at"):
            values = ["2026-02-30T10:00:00+08:00", "9999-12-31T23:59:59-12:00"]
        else:
            values = ["a:b", "", "x" * 3000]
        for value in values:
            yield [*argv[:at], value, *argv[at + 1:]]
        index = at + 1


def test_issue_23_each_value_of_each_example_made_hostile_is_refused_in_one_shape(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the parser: the other arguments are good (the command's own example), so the bad one reaches the
    contract model, the helpers and the connection (no server here: a good request is refused Unreachable)."""
    import shlex

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    tried = 0
    for name, parser in commands().items():
        if name in NO_ARGUMENT_RUNS:
            continue
        line = next(line for line in (parser.epilog or "").splitlines() if "python -m starter" in line)
        words = shlex.split(line)
        for argv in hostile_variants(parser, words[words.index("starter") + 1:]):
            refused_in_one_shape(argv, capsys)
            tried += 1
    assert tried > 400
