"""`python -m bench.ledger_schema_ab [rounds]`: the ledger's postings on a SQLite file with the schema of 2026-11
(inline UNIQUE on pending_id, full correction index) against the current one (both partial), interleaved in one
process, and plain inserts beside them (docs/bench.md "Limits found" 8)."""
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid

from activities import ledger as L
from activities.db import Database
from activities.ledger_schema import TABLES

d = tempfile.mkdtemp(prefix="ledger-ab-")
old = TABLES.replace("pending_id TEXT REFERENCES transfers (id),", "pending_id TEXT UNIQUE REFERENCES transfers (id),")
old = old.replace("ON transfers (corrects_id) WHERE corrects_id IS NOT NULL", "ON transfers (corrects_id)")
old = re.sub(r"CREATE UNIQUE INDEX IF NOT EXISTS transfers_resolve_once[^;]*;", "", old)
with sqlite3.connect(f"{d}/old.db") as raw:
    raw.executescript(old)
books = {"old": L.Ledger(Database(f"{d}/old.db")), "new": L.Ledger(Database(f"{d}/new.db"))}
# the old file gets the partial index added by ensure_schema; drop it to measure the old schema as it was
with books["old"].db.transaction() as tx:
    tx.execute("DROP INDEX transfers_resolve_once")
plain = Database(f"{d}/plain.db")
plain.ensure_schema("CREATE TABLE IF NOT EXISTS p (key TEXT PRIMARY KEY, account TEXT NOT NULL, amount BIGINT)", "")
res = {"old": [], "new": [], "plain": []}


def post(book, n, tag):
    t = time.perf_counter()
    for i in range(n):
        if i % 2 == 0:
            book.transfer(f"{tag}:d{i}", "world:deposits", f"client:b{i % 50}:available", 200, "deposit")
        else:
            book.transfer(f"{tag}:f{i}", f"client:b{(i - 1) % 50}:available", f"task:{tag}:escrow", 100, "freeze")
    return n / (time.perf_counter() - t)


def ins(n, tag):
    t = time.perf_counter()
    for i in range(n):
        with plain.transaction() as tx:
            tx.execute("INSERT INTO p VALUES (?, ?, 200)", (f"{tag}:{i}", "a"))
    return n / (time.perf_counter() - t)


for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 7):
    order = ("old", "new") if r % 2 == 0 else ("new", "old")
    for k in order:
        res[k].append(post(books[k], 1000, f"r{r}{uuid.uuid4().hex[:6]}"))
    res["plain"].append(ins(1000, f"r{r}"))
m = {k: statistics.median(v) for k, v in res.items()}
print({k: round(v) for k, v in m.items()}, "old/plain", round(m["old"] / m["plain"], 3),
      "new/plain", round(m["new"] / m["plain"], 3), "new/old", round(m["new"] / m["old"], 3),
      "per round new/old", [round(a / b, 2) for a, b in zip(res["new"], res["old"], strict=True)])
