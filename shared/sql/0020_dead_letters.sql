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
-- Service roles get INSERT (and SELECT, like every es table) from es.register_service.
GRANT SELECT ON es.dead_letters TO lookback_auditor;
