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

-- A service role may append only to the stream categories it owns (es.category_owners). Row
-- security is not applied to the table owner (the migrating administrator), which is what audit
-- tests use to tamper. One policy per role with its categories as a constant: an EXISTS probe of
-- es.category_owners per row cost ~15 µs of every append. Changing es.category_owners therefore
-- needs a migration that recreates the policies (es.grant_categories below does it).
ALTER TABLE es.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE es.streams ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_read ON es.events FOR SELECT USING (true);
CREATE POLICY streams_read ON es.streams FOR SELECT USING (true);

CREATE FUNCTION es.grant_categories() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT owner, array_agg(category ORDER BY category) AS categories
               FROM es.category_owners GROUP BY owner
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON es.events', r.owner || '_appends');
        EXECUTE format('DROP POLICY IF EXISTS %I ON es.streams', r.owner || '_creates');
        EXECUTE format('DROP POLICY IF EXISTS %I ON es.streams', r.owner || '_bumps');
        EXECUTE format('CREATE POLICY %I ON es.events FOR INSERT TO %I '
                       'WITH CHECK (split_part(stream_id, ''-'', 1) = ANY (%L::text[]))',
                       r.owner || '_appends', r.owner, r.categories);
        EXECUTE format('CREATE POLICY %I ON es.streams FOR INSERT TO %I '
                       'WITH CHECK (split_part(stream_id, ''-'', 1) = ANY (%L::text[]))',
                       r.owner || '_creates', r.owner, r.categories);
        EXECUTE format('CREATE POLICY %I ON es.streams FOR UPDATE TO %I '
                       'USING (split_part(stream_id, ''-'', 1) = ANY (%L::text[]))',
                       r.owner || '_bumps', r.owner, r.categories);
    END LOOP;
END $$;
SELECT es.grant_categories();
