"""The service's Prometheus metrics, created on a registry the composition root owns."""

from prometheus_client import CollectorRegistry, Counter, Gauge

NAMESPACE = "ringback"


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.calls_started = Counter(
            "calls_started", "Calls placed (every attempt)",
            namespace=NAMESPACE, registry=registry,
        )
        self.calls_outcome = Counter(
            "calls_outcome", "Calls ended, by outcome",
            ["outcome"], namespace=NAMESPACE, registry=registry,
        )
        self.webhooks = Counter(
            "webhooks", "Webhooks received, by event type and result",
            ["type", "result"], namespace=NAMESPACE, registry=registry,
        )
        self.outbox_pending = Gauge(
            "outbox_pending", "Events waiting to be delivered to the CRM",
            namespace=NAMESPACE, registry=registry,
        )
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
        self.channels_busy = Gauge(
            "channels_busy", "Calls up or being placed right now",
            namespace=NAMESPACE, registry=registry,
        )
