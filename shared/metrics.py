"""Prometheus metrics of one service process (its own registry, so tests can run many apps)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.pipeline import CommandMetrics


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"service": service}
        self.handled = Counter("lookback_messages_handled_total", "Deliveries handled, by outcome",
                               ["consumer", "outcome"], registry=self.registry)
        self.failed = Counter("lookback_messages_failed_total",
                              "Delivery attempts that failed transiently", ["consumer"],
                              registry=self.registry)
        self.dead_lettered = Counter("lookback_messages_dead_lettered_total",
                                     "Deliveries sent to the dead-letter queue", ["consumer"],
                                     registry=self.registry)
        self.relay_lag = Gauge("lookback_relay_lag_events", "Sequenced events not yet published",
                               registry=self.registry)
        self.relay_published = Counter("lookback_relay_published_total", "Events published",
                                       registry=self.registry)
        self.sequencer_lag = Gauge("lookback_sequencer_lag_events",
                                   "Appended events not yet sequenced", registry=self.registry)
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
