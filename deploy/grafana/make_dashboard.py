"""Writes deploy/grafana/dashboards/xingtu.json, the Grafana dashboard of the worker's metrics (issue 9 item 3).

The business panels are made from workflows/metrics.py (one list of names for the workflows, this dashboard and
the tests); the SDK panels from the Temporal SDK's own metrics. `python deploy/grafana/make_dashboard.py` after
changing either; tests/test_compose.py fails while the checked-in file differs from what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from workflows import metrics  # noqa: E402  (importable from a checkout only once ROOT is on the path)

OUT = ROOT / "deploy/grafana/dashboards/xingtu.json"
UID = "xingtu-worker"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # deploy/grafana/provisioning/datasources
SEL = 'task_queue=~"$task_queue"'

# SDK metrics shown (names as the SDK's Prometheus exporter writes them, prefix temporal_).
SDK_METRICS = (
    "temporal_workflow_completed", "temporal_workflow_failed", "temporal_workflow_task_execution_latency_bucket",
    "temporal_workflow_task_schedule_to_start_latency_bucket", "temporal_activity_execution_latency_bucket",
    "temporal_activity_schedule_to_start_latency_bucket", "temporal_activity_execution_failed",
    "temporal_worker_task_slots_available", "temporal_sticky_cache_size", "temporal_num_pollers",
)


def q(counter: metrics.Counter, by: str = "kind", window: str = "$__rate_interval", fn: str = "increase") -> str:
    return f"sum by ({by}) ({fn}({counter.name}{{{SEL}}}[{window}]))"


def panel(title: str, targets: list[tuple[str, str]], kind: str = "timeseries", unit: str = "short",
          description: str = "", w: int = 8, h: int = 8) -> dict[str, Any]:
    return {
        "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}} if kind == "stat"
        else {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
                    for i, (expr, legend) in enumerate(targets)],
    }


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


def business_panels() -> list[dict[str, Any]]:
    m = metrics
    raised, resolved = q(m.DISPUTES_RAISED, "kind", "$__range"), q(m.DISPUTES_RESOLVED, "kind", "$__range")
    opened = f"sum by (kind) ({m.ESCALATIONS_OPENED.name}{{{SEL}}})"
    closed = f"sum by (kind) ({m.ESCALATIONS_CLOSED.name}{{{SEL}}})"
    return [
        row("Business (workflows/metrics.py)"),
        panel("Tasks published", [(q(m.TASKS_PUBLISHED, window="$__range"), "{{kind}}")], "stat",
              description=m.TASKS_PUBLISHED.description, w=6, h=5),
        panel("Pieces mounted", [(q(m.PIECES_MOUNTED, window="$__range"), "{{kind}}")], "stat",
              description=m.PIECES_MOUNTED.description, w=6, h=5),
        panel("Escalations open", [(f"{opened} - ({closed} or {opened} * 0)", "{{kind}}")], "stat",
              description="escalations opened - closed, summed over workers (exact over the workers' current "
                          "lifetimes; the Temporal UI filter escalated = true lists them)", w=6, h=5),
        panel("Disputes open", [(f"{raised} - ({resolved} or {raised} * 0)", "{{kind}}")], "stat",
              description="raised - resolved over the dashboard's time range", w=6, h=5),
        panel("Conversions counted per minute",
              [(q(m.CONVERSIONS_COUNTED, fn="rate") + " * 60", "counted {{kind}}"),
               (q(m.CONVERSIONS_RELEASED, fn="rate") + " * 60", "released {{kind}}")],
              description=f"{m.CONVERSIONS_COUNTED.description}; {m.CONVERSIONS_RELEASED.description}"),
        panel("Fen settled, by recipient", [(q(m.SETTLED_FEN, "kind, to"), "{{kind}} to {{to}}")],
              description=m.SETTLED_FEN.description),
        panel("Money over the range: frozen, settled, refunded",
              [(q(m.FROZEN_FEN, window="$__range"), "frozen {{kind}}"),
               (q(m.SETTLED_FEN, "kind", "$__range"), "settled {{kind}}"),
               (q(m.REFUNDED_FEN, window="$__range"), "refunded {{kind}}")], "stat",
              description="fen; when every task of the range has closed, frozen = settled + refunded (R-4)"),
        panel("Pieces settled", [(q(m.PIECES_SETTLED, "kind, outcome"), "{{kind}} {{outcome}}")],
              description=m.PIECES_SETTLED.description),
        panel("Disputes", [(q(m.DISPUTES_RAISED, "kind, dispute"), "raised {{dispute}}"),
                           (q(m.DISPUTES_RESOLVED, "kind, dispute"), "resolved {{dispute}}")],
              description=m.DISPUTES_RAISED.description),
        panel("Escalations", [(q(m.ESCALATIONS_OPENED), "opened {{kind}}"),
                              (q(m.ESCALATIONS_CLOSED), "closed {{kind}}"),
                              (q(m.MONEY_STALLS), "money stalled {{kind}}")],
              description=m.ESCALATIONS_OPENED.description),
    ]


def sdk_panels() -> list[dict[str, Any]]:
    def p95(metric: str, by: str) -> str:
        return f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}{{{SEL}}}[$__rate_interval])))"

    return [
        row("Temporal SDK (worker)"),
        panel("Workflows completed / failed",
              [(f"sum by (workflow_type) (rate(temporal_workflow_completed{{{SEL}}}[$__rate_interval]))",
                "completed {{workflow_type}}"),
               (f"sum by (workflow_type) (rate(temporal_workflow_failed{{{SEL}}}[$__rate_interval]))",
                "failed {{workflow_type}}")], unit="ops"),
        panel("Workflow task execution p95", [(p95("temporal_workflow_task_execution_latency_bucket",
                                                   "workflow_type"), "{{workflow_type}}")], unit="ms"),
        panel("Schedule-to-start p95 (backlog)",
              [(p95("temporal_workflow_task_schedule_to_start_latency_bucket", "task_queue"), "workflow tasks"),
               (p95("temporal_activity_schedule_to_start_latency_bucket", "task_queue"), "activities")],
              unit="ms"),
        panel("Activity execution p95", [(p95("temporal_activity_execution_latency_bucket", "activity_type"),
                                          "{{activity_type}}")], unit="ms"),
        panel("Activity failures (retried)",
              [(f"sum by (activity_type) (rate(temporal_activity_execution_failed{{{SEL}}}[$__rate_interval]))",
                "{{activity_type}}")], unit="ops"),
        panel("Worker slots available, sticky cache, pollers",
              [(f"sum by (worker_type) (temporal_worker_task_slots_available{{{SEL}}})", "slots {{worker_type}}"),
               ("sum(temporal_sticky_cache_size)", "sticky cache"),
               (f"sum by (poller_type) (temporal_num_pollers{{{SEL}}})", "pollers {{poller_type}}")]),
    ]


def layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    x = y = line_h = 0
    for number, p in enumerate(panels, start=1):
        p["id"] = number
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24 or p["type"] == "row":
            x, y, line_h = 0, y + line_h, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x, line_h = x + w, max(line_h, h)
    return panels


def dashboard() -> dict[str, Any]:
    return {
        "uid": UID, "title": "Xingtu worker", "tags": ["xingtu", "temporal"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "description": "Business counters of the workflows (workflows/metrics.py) and the Temporal SDK's worker "
                       "metrics; made by deploy/grafana/make_dashboard.py",
        "templating": {"list": [{
            "name": "task_queue", "label": "task queue", "type": "query", "datasource": DATASOURCE,
            "query": {"query": "label_values(temporal_num_pollers, task_queue)", "refId": "task_queue"},
            "definition": "label_values(temporal_num_pollers, task_queue)",
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        }]},
        "panels": layout([*business_panels(), *sdk_panels()]),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(ROOT)}")
