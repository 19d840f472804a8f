"""Prometheus metrics of one service process (its own registry, so tests can run many apps).

Lags are gauges that exist only once measured: a gauge that reads 0 before anyone looked would
say "caught up" when nothing is known (a sampler that cannot reach the database, a consumer that
has not started). The sampler (shared/health.py) sets them from its own connection; a scrape only
reads what it kept, so scraping often costs nothing and touches no loop's connection.
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.pipeline import CommandMetrics


class MeasuredGauge(Collector):
    """A gauge whose series appear only once a value was measured (and vanish when forgotten)."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._values: dict[tuple[str, ...], float] = {}

    def set(self, value: float, *labels: str) -> None:
        self._values[labels] = float(value)

    def forget(self, *labels: str) -> None:
        self._values.pop(labels, None)

    def get(self, *labels: str) -> float | None:
        return self._values.get(labels)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for labels, value in sorted(self._values.items()):
            family.add_metric(list(labels), value)
        yield family


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"service": service}
        self.handled = Counter("lookback_messages_handled_total", "Deliveries handled, by outcome",
                               ["consumer", "outcome"], registry=self.registry)
        self.failed = Counter("lookback_messages_failed_total",
                              "Delivery attempts that failed transiently", ["consumer"],
                              registry=self.registry)
        self.requeued = Counter("lookback_messages_requeued_total",
                                "Deliveries given back to the broker (retries spent, or shutdown)",
                                ["consumer", "reason"], registry=self.registry)
        self.dead_lettered = Counter("lookback_messages_dead_lettered_total",
                                     "Deliveries sent to the dead-letter queue", ["consumer"],
                                     registry=self.registry)
        self.transaction_seconds = Histogram(
            "lookback_consumer_transaction_seconds", "Time one consumer transaction was open",
            ["consumer"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.longest_transaction = Gauge(
            "lookback_consumer_transaction_longest_seconds",
            "The longest consumer transaction since the process started", ["consumer"],
            registry=self.registry)
        self.relay_published = Counter("lookback_relay_published_total", "Events published",
                                       registry=self.registry)
        self.relay_lag = MeasuredGauge("lookback_relay_lag_events",
                                       "This service's sequenced events not yet published")
        self.sequencer_lag = MeasuredGauge("lookback_sequencer_lag_events",
                                           "Committed events (of any service) not yet sequenced")
        self.consumer_lag = MeasuredGauge(
            "lookback_consumer_lag_events",
            "Sequenced events of a consumer's types after the last one it handled", ("consumer",))
        self.ledger_head = MeasuredGauge("lookback_ledger_head_position",
                                         "The ledger's size (the last global position)")
        for gauge in (self.relay_lag, self.sequencer_lag, self.consumer_lag, self.ledger_head):
            self.registry.register(gauge)
        # Labelled, so a target that has acknowledged nothing yet is absent rather than 0.
        self.witnessed_tree_size = Gauge("lookback_witness_tree_size",
                                         "Newest checkpoint tree size a witness acknowledged",
                                         ["target"], registry=self.registry)
        self.dead_letters = Gauge("lookback_dead_letters",
                                  "Dead letters waiting for a person to replay or discard them, per "
                                  "consumer (local transport) and per RabbitMQ DLQ",
                                  ["queue"], registry=self.registry)
        self.pipeline = CommandMetrics(self.registry)
        self.info = Gauge("lookback_service_info", "Service identity", ["service"],
                          registry=self.registry)
        self.info.labels(**labels).set(1)
        self._longest: dict[str, float] = {}

    def observe_transaction(self, consumer: str, seconds: float) -> None:
        self.transaction_seconds.labels(consumer).observe(seconds)
        if seconds > self._longest.get(consumer, -1.0):
            self._longest[consumer] = seconds
            self.longest_transaction.labels(consumer).set(seconds)
