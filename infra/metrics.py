"""The service's Prometheus metrics, created on a registry the composition root owns.

Every label has a bounded set of values: HTTP requests are counted by method (the standard ones,
anything else as "OTHER"), route template (never the raw path) and status class; webhooks by
event type as the caller maps it (unknown types as one label).
"""

from importlib.metadata import version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

NAMESPACE = "ringback"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # no route took the request (a 404)
# Seconds: from a healthz answered at once to a slow database write.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds from a call going out to its answer: a phone rings for seconds to a minute.
SETUP_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 45.0, 60.0, 90.0)
# Seconds a scheduler tick takes: fine around the 20 ms a dispatch tick should stay under.
TICK_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
                0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ProcessCollector(registry=registry)  # process_*: the names dashboards expect
        PlatformCollector(registry=registry)
        Gauge(
            "build_info", "The running ringback's version (always 1)",
            ["version"], namespace=NAMESPACE, registry=registry,
        ).labels(version("ringback")).set(1)
        self.calls_started = Counter(
            "calls_started", "Calls placed (every attempt)",
            namespace=NAMESPACE, registry=registry,
        )
        self.calls_outcome = Counter(
            "calls_outcome", "Calls ended, by outcome",
            ["outcome"], namespace=NAMESPACE, registry=registry,
        )
        self.call_setup = Histogram(
            "call_setup_seconds", "From a call going out to its answer (answered calls)",
            namespace=NAMESPACE, registry=registry, buckets=SETUP_BUCKETS,
        )
        self.webhooks = Counter(
            "webhooks", "Webhooks received, by event type and result",
            ["type", "result"], namespace=NAMESPACE, registry=registry,
        )
        self.http_requests = Counter(
            "http_requests", "HTTP responses, by method, route template and status class",
            ["method", "route", "status"], namespace=NAMESPACE, registry=registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request, by route template",
            ["route"], namespace=NAMESPACE, registry=registry, buckets=HTTP_BUCKETS,
        )
        self.outbox_pending = Gauge(
            "outbox_pending", "Events waiting to be delivered to the CRM",
            namespace=NAMESPACE, registry=registry,
        )
        self.outbox_lag = Gauge(
            "outbox_lag_seconds", "Age of the oldest event waiting for the CRM (0: none)",
            namespace=NAMESPACE, registry=registry,
        )
        self._sip_registered: Gauge | None = None  # registered with the first state
        self.jobs = Gauge(
            "jobs", "Jobs, by status", ["status"], namespace=NAMESPACE, registry=registry,
        )
        self.background_errors = Counter(
            "background_errors", "Failures of background work (ticks, tasks), by kind",
            ["task"], namespace=NAMESPACE, registry=registry,
        )
        self.orphans_settled = Counter(
            "orphaned_calls_settled", "Calls cut by a dead process, settled",
            namespace=NAMESPACE, registry=registry,
        )
        self.orphans_hung_up = Counter(
            "orphaned_calls_hung_up", "Calls left up by a dead process, hung up with a BYE",
            namespace=NAMESPACE, registry=registry,
        )
        self.ticks = Histogram(
            "tick_seconds", "Time a scheduler tick took, waiting for the database included",
            ["tick"], namespace=NAMESPACE, registry=registry, buckets=TICK_BUCKETS,
        )
        self.channels_busy = Gauge(
            "channels_busy", "Calls up or being placed right now",
            namespace=NAMESPACE, registry=registry,
        )

    def observe_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """One HTTP response; `route` is the template of the route that took it (None: none)."""
        template = route or UNMATCHED_ROUTE
        self.http_requests.labels(
            method if method in HTTP_METHODS else "OTHER", template, f"{status // 100}xx"
        ).inc()
        self.http_duration.labels(template).observe(seconds)

    def sip_registration(self, current: bool) -> None:
        """The SIP registration's state; the gauge exists once there is a registrar to report."""
        if self._sip_registered is None:
            self._sip_registered = Gauge(
                "sip_registered", "1 while the binding at the registrar is current, else 0",
                namespace=NAMESPACE, registry=self.registry,
            )
        self._sip_registered.set(1 if current else 0)
