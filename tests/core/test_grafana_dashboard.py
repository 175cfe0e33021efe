"""The Grafana dashboard in deploy/ is importable JSON and charts only metrics printgate exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from printgate.metrics import AGENT, CLOUD

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "printgate-dashboard.json"


def test_dashboard_is_importable_and_uses_exported_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and dash["panels"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    families = [m for registry in (CLOUD, AGENT) for m in registry.collect()]  # the cloud's and the agents'
    exported = {s.name for m in families for s in m.samples} | {
        m.name + suffix for m in families for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    used = {name for p in dash["panels"] for t in p["targets"]
            for name in re.findall(r"\bprintgate_[a-z_]+", t["expr"])}
    assert used and used <= exported, used - exported
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
