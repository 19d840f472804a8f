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
-- Service roles get INSERT (and SELECT, like every es table) from es.register_service; each sees
-- and adds only its own consumers' dead letters (es.owns, 0002).
GRANT SELECT ON es.dead_letters TO lookback_auditor;
ALTER TABLE es.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY dead_letters_own ON es.dead_letters USING (es.owns(consumer))
    WITH CHECK (es.owns(consumer));
CREATE POLICY dead_letters_audited ON es.dead_letters FOR SELECT TO lookback_auditor USING (true);
