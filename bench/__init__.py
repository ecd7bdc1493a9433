"""Benchmark of the project's workflows against bare Temporal of the same shape (`python -m bench`).

Phases (bench/phases.py, bench/ledger_bench.py): publish, mount, ingest, settle, ledger; each interleaves the
project's path and a bare baseline on the same server, several rounds, and reports medians and project/bare
ratios. `python -m bench scale` (bench/scale.py) runs one task with 10,000 pieces and 1,000,000 conversions.
See docs/bench.md.
"""
