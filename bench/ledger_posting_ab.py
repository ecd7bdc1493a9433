"""`python -m bench.ledger_posting_ab [rounds]`: PostgreSQL postings of the ledger phase's shape (bench/ledger_bench.py)
made two ways, interleaved in one process against the same plain inserts: each a transaction of its own
(`Ledger.transfer`: one autocommit statement, one round trip) and each inside an explicit transaction (BEGIN,
`ledger_post`, COMMIT, as a settlement's postings are). The plain side is the phase's: one INSERT per transaction.
PostgreSQL at BENCH_PG_DSN, in a scratch schema dropped afterwards (docs/bench.md, 2026-12-04 ledger)."""
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from urllib.parse import quote

import psycopg

from activities.db import Database
from activities.ledger import Ledger
from bench.ledger_bench import PG_DSN, PLAIN_DDL

Posting = tuple[str, str, str, int, str]


def posting(tag: str, i: int) -> Posting:
    if i % 2 == 0:
        return f"{tag}:d{i}", "world:deposits", f"client:b{i % 50}:available", 200, "deposit"
    return f"{tag}:f{i}", f"client:b{(i - 1) % 50}:available", f"task:{tag}:escrow", 100, "freeze"


def main(rounds: int, size: int = 400) -> None:
    schema = f"bench_ab_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in PG_DSN else "?"
    db = Database(f"{PG_DSN}{separator}options={quote(f'-csearch_path={schema}')}")
    try:
        book = Ledger(db)
        db.ensure_schema(PLAIN_DDL, PLAIN_DDL)

        def alone(tag: str, i: int) -> None:
            book.transfer(*posting(tag, i))

        def in_transaction(tag: str, i: int) -> None:
            with db.transaction() as tx:
                book._post(tx, book._new(*posting(tag, i), "", "posted"))

        def plain(tag: str, i: int) -> None:
            with db.transaction() as tx:
                tx.execute("INSERT INTO bench_plain (key, account, amount) VALUES (?, ?, ?)", (f"{tag}:{i}", "a", 1))

        sides: dict[str, Callable[[str, int], None]] = {"alone": alone, "in_transaction": in_transaction,
                                                        "plain": plain}
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(rounds + 1):  # round 0 warms up (accounts created, statements prepared)
            for name, post in (sides.items() if r % 2 else reversed(sides.items())):
                tag = f"r{r}-{name}-{uuid.uuid4().hex[:6]}"
                # the round's escrow exists (the clients' accounts after round 0): every posting timed is the usual one
                book.transfer(f"{tag}:open", "world:deposits", f"task:{tag}:escrow", 1, "test")
                start = time.perf_counter()
                for i in range(size):
                    post(tag, i)
                if r:
                    rates[name].append(size / (time.perf_counter() - start))
        book.check_conservation()
        median = {name: statistics.median(values) for name, values in rates.items()}
        print({name: round(value) for name, value in median.items()},
              "alone/plain", round(median["alone"] / median["plain"], 2),
              "in_transaction/plain", round(median["in_transaction"] / median["plain"], 2),
              "per round alone/plain", [round(a / p, 2) for a, p in zip(rates["alone"], rates["plain"], strict=True)],
              "in_transaction/plain",
              [round(a / p, 2) for a, p in zip(rates["in_transaction"], rates["plain"], strict=True)])
    finally:
        db.close()
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
