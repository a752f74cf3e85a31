"""Prometheus metrics of one app: requests by route and status, latency, sync outcomes, outbox depth.

Each app has its own registry, so tests can build many apps in one process without clashing
names. Labels are route *templates* (``/api/v1/cases/{case_id}``), never raw paths or query
strings: those hold ids and would also grow the label set without bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily

from fhir_cm.store import Store, follow_up_latencies, outbox_counts

__all__ = ["ApiMetrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Discharge → follow-up on the server: seconds when pushed in the round that saw it, up to days when not.
FOLLOW_UP_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 3600.0, 86400.0)


class _FollowUpLatency:
    """``fhir_cm_discharge_follow_up_seconds``, read from the store at scrape time: the worker and
    ``fhir-cm pull`` (other processes) record each follow-up's latency there, not in this process."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def collect(self) -> list[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "fhir_cm_discharge_follow_up_seconds",
            "From learning of a hospital discharge (the pull round that read it) to its follow-up on the server.",
        )
        counts = [sum(1 for v in self.values if v <= bound) for bound in FOLLOW_UP_BUCKETS]
        buckets = [(str(b), float(c)) for b, c in zip(FOLLOW_UP_BUCKETS, counts)] + [("+Inf", float(len(self.values)))]
        family.add_metric([], buckets, sum_value=sum(self.values))
        return [family]


class ApiMetrics:
    """The metrics of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fhir_cm_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fhir_cm_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.sync_runs = Counter(
            "fhir_cm_sync_runs_total",
            "Push and pull runs triggered through the API, by outcome.",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.sync_items = Counter(
            "fhir_cm_sync_items_total",
            "Counts reported by sync runs (created, updated, unchanged, failed, …).",
            ["operation", "result"],
            registry=self.registry,
        )
        self.outbox = Gauge(
            "fhir_cm_outbox_depth",
            "Outbox rows per status, read from the store at scrape time.",
            ["status"],
            registry=self.registry,
        )
        self.follow_ups = _FollowUpLatency()
        self.registry.register(self.follow_ups)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def sync_run(self, operation: str, outcome: str, report: Mapping[str, Any] | None = None) -> None:
        """Count a sync run, and the whole-number figures of its report (created, failed, …)."""
        self.sync_runs.labels(operation, outcome).inc()
        for name, value in _counts(report or {}):
            self.sync_items.labels(operation, name).inc(value)

    def render(self, store: Store) -> bytes:
        """The exposition text, with the outbox depth read fresh from the store."""
        with store.session(read_only=True) as session:
            for status, count in outbox_counts(session).items():
                self.outbox.labels(status.value).set(count)
            self.follow_ups.values = follow_up_latencies(session)
        return generate_latest(self.registry)

    def render_without_store(self) -> bytes:
        """The exposition text with the outbox depth as last read (the store did not answer)."""
        return generate_latest(self.registry)


def _counts(report: Mapping[str, Any], prefix: str = "") -> list[tuple[str, int]]:
    """The whole-number figures of a report, nested reports' as ``outer.inner`` (one level deep)."""
    out = []
    for name, value in report.items():
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out.append((prefix + name, value))
        elif isinstance(value, Mapping) and not prefix:
            out.extend(_counts(value, f"{name}."))
    return out
