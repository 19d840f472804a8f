-- Database roles per service, row security on stream categories, and the consumer-side tables.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['lookback_registry', 'lookback_rectification', 'lookback_inspection',
                             'lookback_notifier', 'lookback_example', 'lookback_sequencer',
                             'lookback_auditor']
    LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- roles are cluster-wide; another database (or a concurrent migration) made it
        END;
    END LOOP;
END $$;

-- Exactly-once effects at consumers: the inbox row, the handler's writes and the position commit
-- together (DESIGN.md, "The event store").
CREATE TABLE es.inbox (
    consumer    text        NOT NULL,
    event_id    uuid        NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, event_id)
);

-- Where each relay and projection has got to in the ledger's global order.
CREATE TABLE es.positions (
    name            text   PRIMARY KEY,
    global_position bigint NOT NULL DEFAULT 0
);

GRANT USAGE ON SCHEMA es TO lookback_registry, lookback_rectification, lookback_inspection,
    lookback_notifier, lookback_example, lookback_sequencer, lookback_auditor;
GRANT SELECT ON ALL TABLES IN SCHEMA es TO lookback_registry, lookback_rectification,
    lookback_inspection, lookback_notifier, lookback_example, lookback_sequencer, lookback_auditor;
GRANT INSERT ON es.events, es.streams, es.inbox TO lookback_registry, lookback_rectification,
    lookback_inspection, lookback_notifier, lookback_example;
GRANT UPDATE (version) ON es.streams TO lookback_registry, lookback_rectification,
    lookback_inspection, lookback_notifier, lookback_example;
GRANT INSERT, UPDATE ON es.positions TO lookback_registry, lookback_rectification,
    lookback_inspection, lookback_notifier, lookback_example, lookback_sequencer;
GRANT INSERT ON es.ledger, es.checkpoints TO lookback_sequencer;
GRANT UPDATE ON es.sequencer_state TO lookback_sequencer;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA es TO lookback_registry, lookback_rectification,
    lookback_inspection, lookback_notifier, lookback_example;

-- A service role may append only to the stream categories it owns. Row security is not applied
-- to the table owner (the migrating administrator), which is what audit tests use to tamper.
ALTER TABLE es.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE es.streams ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_read ON es.events FOR SELECT USING (true);
CREATE POLICY events_append_own_categories ON es.events FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM es.category_owners o
                         WHERE o.category = split_part(stream_id, '-', 1) AND o.owner = current_user));
CREATE POLICY streams_read ON es.streams FOR SELECT USING (true);
CREATE POLICY streams_own_categories ON es.streams FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM es.category_owners o
                         WHERE o.category = split_part(stream_id, '-', 1) AND o.owner = current_user));
CREATE POLICY streams_bump_own_categories ON es.streams FOR UPDATE
    USING (EXISTS (SELECT 1 FROM es.category_owners o
                    WHERE o.category = split_part(stream_id, '-', 1) AND o.owner = current_user));
