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

-- The append functions (es.append, es.append_one) are defined in 0004 and 0005.

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
-- Each service registers its own categories (es.register_service, 0002) in its migrations.
