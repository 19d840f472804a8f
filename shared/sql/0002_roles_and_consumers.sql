-- Privileges of the kernel's roles (sequencer, auditor), row security on stream categories and on
-- the consumer-side tables, and es.register_service: how a service's own migration claims its
-- stream categories. The kernel names no service. The login roles themselves are made by
-- `lookback provision` (shared/provisioning.py), before any migration: migrations run as the
-- migration role, which may not create roles.

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

GRANT USAGE ON SCHEMA es TO lookback_sequencer, lookback_auditor;
GRANT SELECT ON ALL TABLES IN SCHEMA es TO lookback_sequencer, lookback_auditor;
GRANT INSERT ON es.ledger, es.checkpoints TO lookback_sequencer;
GRANT UPDATE ON es.sequencer_state TO lookback_sequencer;

-- Whose bookkeeping a row is. A consumer's or relay's name begins with its service's name
-- (`rectification.on-registry`, `local:rectification.on-registry`, `relay:rectification`), and a
-- service logs in as `lookback_<service>`: a role reads and writes only its own rows, so it can
-- neither move another relay's position nor pre-mark another consumer's events as handled.
CREATE FUNCTION es.owns(p_name text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT current_user LIKE 'lookback\_%'
       AND p_name ~ ('^([a-z]+:)?' || substr(current_user, 10) || '(\.|$)')
$$;

ALTER TABLE es.positions ENABLE ROW LEVEL SECURITY;
CREATE POLICY positions_own ON es.positions USING (es.owns(name)) WITH CHECK (es.owns(name));
CREATE POLICY positions_audited ON es.positions FOR SELECT TO lookback_auditor USING (true);
ALTER TABLE es.inbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY inbox_own ON es.inbox USING (es.owns(consumer)) WITH CHECK (es.owns(consumer));
CREATE POLICY inbox_audited ON es.inbox FOR SELECT TO lookback_auditor USING (true);

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

-- A service's migration calls this once: the stream categories its role alone may append to, and
-- the privileges every service role has on the kernel's tables. A
-- category already owned by another role is refused: two services never share a stream.
CREATE FUNCTION es.register_service(p_role name, p_categories text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_taken text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role) THEN
        RAISE EXCEPTION 'role % does not exist: run `lookback provision` before migrating', p_role;
    END IF;
    SELECT string_agg(category || ' (' || owner || ')', ', ') INTO v_taken
      FROM es.category_owners WHERE category = ANY (p_categories) AND owner <> p_role;
    IF v_taken IS NOT NULL THEN
        RAISE EXCEPTION 'stream categories already owned by another service: %', v_taken;
    END IF;
    INSERT INTO es.category_owners (category, owner)
        SELECT c, p_role FROM unnest(p_categories) AS c ON CONFLICT (category) DO NOTHING;
    EXECUTE format('GRANT USAGE ON SCHEMA es TO %I', p_role);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA es TO %I', p_role);
    EXECUTE format('GRANT INSERT ON es.events, es.streams, es.inbox TO %I', p_role);
    EXECUTE format('GRANT UPDATE (version) ON es.streams TO %I', p_role);
    EXECUTE format('GRANT INSERT, UPDATE ON es.positions TO %I', p_role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA es TO %I', p_role);
    IF to_regclass('es.dead_letters') IS NOT NULL THEN
        EXECUTE format('GRANT INSERT ON es.dead_letters TO %I', p_role);
    END IF;
    PERFORM es.grant_categories();
END $$;
