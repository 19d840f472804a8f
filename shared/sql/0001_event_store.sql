-- The append-only event store: streams, events, the sequenced ledger and its signed checkpoints.
-- Migrations after this one may add tables, columns and indexes; they never rewrite es.events.

CREATE SCHEMA IF NOT EXISTS es;

-- One row per stream: its version, and the row lock that serialises writers of that stream only.
CREATE TABLE es.streams (
    stream_id  text   PRIMARY KEY CHECK (stream_id ~ '^[a-z][a-z0-9_]*-.+$'),
    version    bigint NOT NULL DEFAULT 0
);

CREATE TABLE es.events (
    -- No foreign key to es.streams: es.append creates the stream row under its lock first, and
    -- the check would cost every append an index probe for nothing (docs/benchmarks.md).
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL CHECK (stream_version >= 1),
    event_id       uuid        NOT NULL UNIQUE,
    category       text        GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    payload_hash   bytea       NOT NULL CHECK (length(payload_hash) = 32),
    metadata_hash  bytea       NOT NULL CHECK (length(metadata_hash) = 32),
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),  -- informational, never ordered by
    -- The reader's cursor. A row becomes visible to the sequencer only once every transaction that
    -- could still commit below it has finished (see es.read_committed): no event is ever skipped.
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    tx_seq         bigint      GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (stream_id, stream_version)
) WITH (autovacuum_vacuum_insert_threshold = 100000, autovacuum_analyze_scale_factor = 0.01);
CREATE INDEX events_tx_order ON es.events (tx_id, tx_seq);

-- Written only by the sequencer: a dense, gap-free global order with RFC 6962 leaf hashes.
CREATE TABLE es.ledger (
    global_position bigint      PRIMARY KEY CHECK (global_position >= 1),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    payload_hash    bytea       NOT NULL,
    metadata_hash   bytea       NOT NULL,
    leaf_hash       bytea       NOT NULL CHECK (length(leaf_hash) = 32),
    tx_id           xid8        NOT NULL,
    tx_seq          bigint      NOT NULL,
    sequenced_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (stream_id, stream_version)
);

CREATE TABLE es.checkpoints (
    tree_size  bigint      PRIMARY KEY,
    root_hash  bytea       NOT NULL CHECK (length(root_hash) = 32),
    key_id     text        NOT NULL,
    signature  bytea       NOT NULL,
    signed_at  timestamptz NOT NULL
);

-- The sequencer's resumable state (one row). Not evidence: everything in it is recomputable.
CREATE TABLE es.sequencer_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_tx_id  xid8    NOT NULL DEFAULT '0',
    last_tx_seq bigint  NOT NULL DEFAULT 0,
    tree_size   bigint  NOT NULL DEFAULT 0,
    frontier    bytea[] NOT NULL DEFAULT '{}'
);
INSERT INTO es.sequencer_state DEFAULT VALUES;

-- Append-only, enforced by the database for every role including the table owner.
CREATE FUNCTION es.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'es.% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'LB010';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON es.events
    FOR EACH ROW EXECUTE FUNCTION es.refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON es.events
    FOR EACH STATEMENT EXECUTE FUNCTION es.refuse_change();
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON es.ledger
    FOR EACH ROW EXECUTE FUNCTION es.refuse_change();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON es.ledger
    FOR EACH STATEMENT EXECUTE FUNCTION es.refuse_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON es.checkpoints
    FOR EACH ROW EXECUTE FUNCTION es.refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON es.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION es.refuse_change();
CREATE TRIGGER streams_no_delete BEFORE DELETE ON es.streams
    FOR EACH ROW EXECUTE FUNCTION es.refuse_change();
CREATE TRIGGER streams_no_truncate BEFORE TRUNCATE ON es.streams
    FOR EACH STATEMENT EXECUTE FUNCTION es.refuse_change();

-- Append one or many events to one or several streams, atomically, in one round trip.
-- p_expected per stream: -1 any, -2 exists, 0 no stream, n > 0 exactly version n.
-- Raises LB001 (version mismatch) before writing anything, LB002 (partial idempotent overlap).
CREATE FUNCTION es.append(
    p_streams        text[],
    p_expected       bigint[],
    p_event_streams  text[],
    p_event_ids      uuid[],
    p_event_types    text[],
    p_schema_versions integer[],
    p_payloads       jsonb[],
    p_metadata       jsonb[],
    p_payload_hashes bytea[],
    p_metadata_hashes bytea[]
) RETURNS TABLE (stream_id text, stream_version bigint, event_id uuid, tx_id xid8, tx_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_locked   record;
    v_expected bigint;
    v_existing bigint;
    v_total    integer := cardinality(p_event_ids);
BEGIN
    -- Lock the stream rows in sorted order (no deadlock between multi-stream appends). Writers of
    -- other streams never wait: there is no global lock and no global counter on this path.
    INSERT INTO es.streams AS s (stream_id)
        SELECT DISTINCT u FROM unnest(p_streams) AS u ORDER BY 1
        ON CONFLICT DO NOTHING;

    -- Idempotent retry, checked after the locks so a concurrent twin sees the first one's rows.
    PERFORM 1 FROM es.streams s WHERE s.stream_id = ANY (p_streams) ORDER BY s.stream_id FOR UPDATE;
    SELECT count(*) INTO v_existing FROM es.events e WHERE e.event_id = ANY (p_event_ids);
    IF v_existing > 0 THEN
        -- A retry is the same ids, in the same streams, at consecutive versions starting where the
        -- original append started (the exact expected version, if one was given).
        IF v_existing = v_total AND (
            WITH given AS (
                SELECT n.id, n.sid,
                       row_number() OVER (PARTITION BY n.sid ORDER BY n.ord) - 1 AS k
                  FROM unnest(p_event_ids, p_event_streams) WITH ORDINALITY AS n(id, sid, ord)
            ), found AS (
                SELECT g.sid, e.stream_id AS found_sid, e.stream_version - g.k AS base
                  FROM given g JOIN es.events e ON e.event_id = g.id
            )
            SELECT bool_and(f.found_sid = f.sid)
                   AND count(DISTINCT (f.sid, f.base)) = count(DISTINCT f.sid)
                   AND bool_and(x.exp < 0 OR f.base = x.exp + 1)
              FROM found f JOIN unnest(p_streams, p_expected) AS x(sid, exp) ON x.sid = f.sid
        ) THEN
            RETURN QUERY
                SELECT e.stream_id, e.stream_version, e.event_id, e.tx_id, e.tx_seq
                  FROM unnest(p_event_ids) WITH ORDINALITY AS n(id, ord)
                  JOIN es.events e ON e.event_id = n.id
                 ORDER BY n.ord;
            RETURN;
        END IF;
        RAISE EXCEPTION 'append overlaps % of % existing event ids, or names them at other positions',
            v_existing, v_total USING ERRCODE = 'LB002';
    END IF;

    FOR v_locked IN
        SELECT s.stream_id, s.version, x.exp
          FROM es.streams s JOIN unnest(p_streams, p_expected) AS x(sid, exp) ON x.sid = s.stream_id
         ORDER BY s.stream_id
    LOOP
        v_expected := v_locked.exp;
        IF (v_expected = 0 AND v_locked.version <> 0)
           OR (v_expected = -2 AND v_locked.version = 0)
           OR (v_expected > 0 AND v_locked.version <> v_expected) THEN
            RAISE EXCEPTION 'stream % is at version %, expected %', v_locked.stream_id,
                v_locked.version, CASE v_expected WHEN 0 THEN 'no stream' WHEN -2 THEN 'exists'
                                                  ELSE v_expected::text END
                USING ERRCODE = 'LB001';
        END IF;
    END LOOP;

    RETURN QUERY
    WITH numbered AS (
        SELECT n.sid, n.id, n.typ, n.sv, n.pl, n.md, n.ph, n.mh, n.ord,
               s.version + row_number() OVER (PARTITION BY n.sid ORDER BY n.ord) AS ver
          FROM unnest(p_event_streams, p_event_ids, p_event_types, p_schema_versions, p_payloads,
                      p_metadata, p_payload_hashes, p_metadata_hashes)
               WITH ORDINALITY AS n(sid, id, typ, sv, pl, md, ph, mh, ord)
          JOIN es.streams s ON s.stream_id = n.sid
    ), inserted AS (
        INSERT INTO es.events AS e (stream_id, stream_version, event_id, event_type, schema_version,
                                    payload, metadata, payload_hash, metadata_hash)
        SELECT sid, ver, id, typ, sv, pl, md, ph, mh FROM numbered ORDER BY ord
        RETURNING e.stream_id, e.stream_version, e.event_id, e.tx_id, e.tx_seq
    ), bumped AS (  -- data-modifying CTEs always run to completion
        UPDATE es.streams s SET version = s.version + c.n
          FROM (SELECT sid, count(*) AS n FROM unnest(p_event_streams) AS sid GROUP BY sid) c
         WHERE s.stream_id = c.sid
        RETURNING 1
    )
    SELECT i.stream_id, i.stream_version, i.event_id, i.tx_id, i.tx_seq
      FROM inserted i JOIN numbered n ON n.id = i.event_id
     ORDER BY n.ord;
END $$;

-- Committed events after a cursor, in commit-safe order. One statement, one snapshot: only rows
-- whose transaction id is below the oldest still-running transaction are returned, so a
-- transaction that commits late can never be passed over (a bigserial cursor would skip it).
CREATE FUNCTION es.read_committed(p_after_tx xid8, p_after_seq bigint, p_limit integer)
RETURNS SETOF es.events LANGUAGE sql STABLE AS $$
    SELECT * FROM es.events e
     WHERE (e.tx_id, e.tx_seq) > (p_after_tx, p_after_seq)
       AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY e.tx_id, e.tx_seq
     LIMIT p_limit
$$;

-- Which database role may append to which stream category: enforced below by row security.
CREATE TABLE es.category_owners (
    category text PRIMARY KEY,
    owner    name NOT NULL
);
INSERT INTO es.category_owners (category, owner) VALUES
    ('project', 'lookback_registry'), ('adaptation', 'lookback_registry'),
    ('liaison', 'lookback_registry'), ('registryimport', 'lookback_registry'),
    ('problem', 'lookback_rectification'), ('unit', 'lookback_rectification'),
    ('report', 'lookback_rectification'), ('score', 'lookback_rectification'),
    ('frame', 'lookback_inspection'), ('draw', 'lookback_inspection'),
    ('visit', 'lookback_inspection'),
    ('notice', 'lookback_notifier'), ('reminder', 'lookback_notifier'),
    ('example', 'lookback_example');
