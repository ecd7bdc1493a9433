"""Reading the worker's Prometheus endpoint in tests (tests/test_metrics.py, tests/test_money_stalls.py)."""

from __future__ import annotations

import re
import socket
import urllib.request

Sample = tuple[str, dict[str, str], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str) -> list[Sample]:
    """The samples of a Prometheus text exposition: (name, labels, value)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        matched = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        assert matched, line
        labels = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', matched.group(2) or ""))
        samples.append((matched.group(1), labels, float(matched.group(3))))
    return samples


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(value for sample, have, value in samples
               if sample == name and all(have.get(k) == v for k, v in labels.items()))
