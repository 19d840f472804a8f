-- The local transport's dead-letter queue: what a consumer could not parse, with the reason.
-- (On RabbitMQ the same goes to `<service>.dlq`.) Nothing is ever silently dropped.
CREATE TABLE es.dead_letters (
    consumer        text        NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    global_position bigint,
    reason          text        NOT NULL,
    dead_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, event_id)
);
GRANT SELECT, INSERT ON es.dead_letters TO lookback_registry, lookback_rectification,
    lookback_inspection, lookback_notifier, lookback_example;
GRANT SELECT ON es.dead_letters TO lookback_auditor;
