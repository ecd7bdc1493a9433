"""`python -m bench [--quick] [phase ...]`, `python -m bench scale [--pieces N --conversions M]` and
`python -m bench drain [--mounts N]`,
`python -m bench faults [--pieces N --kills K --workers W --seed S --broken-settle-key]` (bench/faults.py).

Phases: publish, mount, ingest, settle, xingguang (Temporal, project vs bare on the same server), ledger (SQLite and
PostgreSQL postings vs plain inserts). Results: bench/results/<date>-<phase>.json (quick runs: <date>-<phase>-quick).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR, PhaseResult, bench_server, machine, scratch_dir, versions, write_result

TEMPORAL_PHASES = ("publish", "mount", "ingest", "settle", "xingguang")
ALL_PHASES = (*TEMPORAL_PHASES, "ledger")
# Items per round and rounds: quick (< 3 min), full (< 30 min), tiny (the smoke test, seconds).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"publish": 4, "mount": 4, "ingest": 20, "settle": 4, "xingguang": 4, "ledger": 50, "rounds": 1,
             "concurrency": 4},
    "quick": {"publish": 30, "mount": 40, "ingest": 300, "settle": 40, "xingguang": 30, "ledger": 400, "rounds": 3,
              "concurrency": 20},
    "full": {"publish": 150, "mount": 200, "ingest": 2000, "settle": 200, "xingguang": 150, "ledger": 2000,
             "rounds": 5, "concurrency": 50},
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phases", nargs="*",
                        help=f"any of {', '.join(ALL_PHASES)} (default all), or `scale`, or `drain`")
    parser.add_argument("--quick", action="store_true", help="small rounds: finishes in under 3 minutes")
    parser.add_argument("--tiny", action="store_true", help="a few items, one round (the smoke test)")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where result files go")
    parser.add_argument("--pieces", type=int, default=10_000, help="scale: mounted pieces")
    parser.add_argument("--conversions", type=int, default=1_000_000, help="scale: conversions in all batches")
    parser.add_argument("--creators", type=int, default=1_000, help="scale: creators joining the task")
    parser.add_argument("--workers", choices=("one", "split"), default="one",
                        help="scale: one worker with both roles, or a workflows-only and an activities-only worker")
    parser.add_argument("--mounts", type=int, default=3_000, help="drain: mounts streamed onto one task")
    args = parser.parse_args(argv)
    unknown = [p for p in args.phases if p not in (*ALL_PHASES, "scale", "drain")]
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(unknown)}")
    return args


async def run_bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = SIZES[mode]
    rounds = args.rounds or sizes["rounds"]
    phases = args.phases or list(ALL_PHASES)
    suffix = "" if mode == "full" else f"-{mode}"
    header = {"mode": mode, "machine": machine(), "versions": versions()}
    written: list[dict[str, Any]] = []

    def record(result: PhaseResult, server: str) -> None:
        body = {**header, "server": server, "concurrency": sizes["concurrency"], **result.as_json()}
        path = write_result(args.out, f"{result.phase}{suffix}", body)
        written.append(body)
        print(f"{result.phase}: project {body['project']['median']}/s, bare {body['bare']['median']}/s,"
              f" ratio {body['ratio_of_medians']} -> {path}", flush=True)

    with scratch_dir() as tmp:
        workdir = Path(tmp)
        temporal = [p for p in phases if p in TEMPORAL_PHASES]
        if temporal:
            from bench.phases import run_phase

            async with bench_server(sizes["concurrency"], workdir) as b:
                for name in temporal:
                    print(f"{name}: {rounds} rounds of {sizes[name]} on {b.server}", flush=True)
                    record(await run_phase(b, name, sizes[name], rounds), b.server)
        if "ledger" in phases:
            from bench.ledger_bench import pg_reachable, postgresql_phase, sqlite_phase

            print(f"ledger: {rounds} rounds of {sizes['ledger']} postings", flush=True)
            record(await sqlite_phase(workdir, sizes["ledger"], rounds), "SQLite file")
            problem = pg_reachable()
            if problem:
                print(f"ledger_postgresql: skipped ({problem})", flush=True)
                written.append({"phase": "ledger_postgresql", "skipped": problem})
            else:
                record(await postgresql_phase(sizes["ledger"], rounds), "PostgreSQL")
    print_table(written)
    return written


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'phase':20s} {'unit':28s} {'project/s':>10s} {'bare/s':>10s} {'ratio':>7s}")
    for row in rows:
        if "skipped" in row:
            print(f"{row['phase']:20s} skipped: {row['skipped']}")
            continue
        print(f"{row['phase']:20s} {row['unit']:28s} {row['project']['median']:10.1f} {row['bare']['median']:10.1f}"
              f" {row['ratio_of_medians']:7.2f}")


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["faults"]:  # its own options (bench/faults.py)
        from bench.faults import main as run_faults

        started = time.monotonic()
        code = run_faults(arguments[1:])
        print(f"wall time {time.monotonic() - started:.0f} s", flush=True)
        raise SystemExit(code)
    args = parse(arguments)
    started = time.monotonic()
    if "scale" in args.phases:
        from bench.scale import run_scale

        asyncio.run(run_scale(args))
    elif "drain" in args.phases:
        from bench.drain import run_drain

        asyncio.run(run_drain(args))
    else:
        asyncio.run(run_bench(args))
    print(f"wall time {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
