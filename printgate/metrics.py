"""Prometheus metrics of printgate (``prometheus_client``, the process's default registry).

Dashboards, not accountability (that is the audit log) nor operators' stories (logs).
The cloud serves ``CLOUD`` (the default registry) on the portal's ``/metrics``; the
agent serves ``AGENT`` (a registry of its own: agent families, task restarts and the
process) on its optional local endpoint (``[agent] metrics_port``), so an agent never
exports the cloud's families. Names carry the ``printgate_`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

CLOUD = REGISTRY  # what the portal's /metrics exports
AGENT = CollectorRegistry(auto_describe=True)  # what the agent's local endpoint exports
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    AGENT.register(_collector)

# ---- sessions, tunnels, proxy (cloud) ----------------------------------------
SESSIONS_OPEN = Gauge("printgate_sessions_open", "DWA sessions open now")
SESSIONS_OPENED = Counter("printgate_sessions_opened", "DWA sessions opened")
SESSIONS_REFUSED = Counter("printgate_sessions_refused", "DWA session requests refused or failed")
TUNNELS_OPEN = Gauge("printgate_tunnels_open", "agent reverse tunnels connected to the relay now")
PROXY_REQUESTS = Counter("printgate_proxy_requests", "requests through the DWA proxy, by outcome", ["outcome"])
PROXY_BLOCKS = Counter("printgate_proxy_blocks", "transfers the DWA proxy blocked, by rule", ["rule"])

# ---- readings (cloud: received and stored; agents: what they report lost) -----
READINGS_RECEIVED = Counter("printgate_readings_received", "readings in batches agents uploaded")
READINGS_STORED = Counter("printgate_readings_stored", "readings stored (batches seen before not counted)")
READINGS_REJECTED = Counter("printgate_readings_rejected", "readings refused one by one at ingest (bad values)")
READINGS_BUSY = Counter("printgate_readings_busy", "readings batches refused because ingest was behind (retried)")
READINGS_UNMAPPED = Counter("printgate_readings_unmapped",
                            "readings stored that match no device of the agent's site (kept, not applied)",
                            ["agent"])
READINGS_DROPPED_REPORTED = Gauge("printgate_readings_dropped_reported",
                                  "readings agents report lost (totals), by agent and reason", ["agent", "reason"])

# ---- audit and database (cloud) ---------------------------------------------------
AUDIT_APPEND_SECONDS = Histogram("printgate_audit_append_seconds", "time to store a batch of audit records",
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
AUDIT_APPEND_FAILURES = Counter("printgate_audit_append_failures", "audit writes that failed")
AUDIT_RECORDS_LOST = Counter("printgate_audit_records_lost",
                             "audit records given up after the store refused them longer than kept, by where",
                             ["where"])
MQTT_DISPATCH_FAILURES = Counter("printgate_mqtt_dispatch_failures",
                                 "MQTT messages from agents whose handling failed (tried again)")
MQTT_MESSAGES_LOST = Counter("printgate_mqtt_messages_lost", "MQTT messages from agents given up, by reason",
                             ["reason"])
DATABASE_ERRORS = Counter("printgate_database_errors", "failures to reach the database, by where", ["where"])

# ---- supervision (agent and cloud) ------------------------------------------------
TASK_RESTARTS = Counter("printgate_task_restarts", "supervised tasks restarted after a failure",
                        ["supervisor", "task"])
AGENT.register(TASK_RESTARTS)  # both processes supervise their loops
AGENT_TASK_FAILURES = Counter("printgate_agent_task_failures",
                              "short-lived per-agent tasks of the gateway that failed (resume, loss check), by task",
                              ["task"])


class _TaskHealthCollector:
    """``printgate_task_healthy{supervisor,task,state}``: 1 while a supervised task runs (or waits), else 0;
    one collector per registry, fed by every exported supervisor (two clouds in one test process too)."""

    def __init__(self) -> None:
        self.sources: dict[int, tuple[str, Callable[[], Iterable[Any]]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("printgate_task_healthy", "1 while a supervised task runs or waits, 0 when "
                                   "it failed (backoff), is degraded or stopped", labels=["supervisor", "task", "state"])
        for supervisor, health in list(self.sources.values()):
            for h in health():
                family.add_metric([supervisor, h.name, h.state], 1.0 if h.healthy else 0.0)
        yield family


_task_health: dict[int, _TaskHealthCollector] = {}  # id(registry) -> its collector


def export_task_health(supervisor: str, health: Callable[[], Iterable[Any]],
                       registry: CollectorRegistry = CLOUD) -> Callable[[], None]:
    """Export the health of ``supervisor``'s tasks on ``registry``; the returned function stops it."""
    collector = _task_health.get(id(registry))
    if collector is None:
        collector = _task_health[id(registry)] = _TaskHealthCollector()
        registry.register(collector)
    key = id(health)
    collector.sources[key] = (supervisor, health)
    return lambda: collector.sources.pop(key, None) and None

# ---- agent ------------------------------------------------------------------------
AGENT_QUEUE_LENGTH = Gauge("printgate_agent_queue_length", "readings waiting on this agent", registry=AGENT)
AGENT_QUEUE_BYTES = Gauge("printgate_agent_queue_bytes", "bytes of readings waiting on this agent", registry=AGENT)
AGENT_READINGS_DROPPED = Gauge("printgate_agent_readings_dropped",
                               "readings this agent lost since its queue was made, by reason", ["reason"],
                               registry=AGENT)
AGENT_DEGRADED = Gauge("printgate_agent_degraded", "1 while the agent runs degraded (e.g. disk full)",
                       registry=AGENT)


def exposition(registry: CollectorRegistry = CLOUD) -> tuple[bytes, str]:
    """The text format of every metric in ``registry`` (the cloud's by default), and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
