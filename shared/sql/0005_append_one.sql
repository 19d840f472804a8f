-- es.append_one: es.append's contract for the commonest call, one event, with scalar arguments.
-- Encoding and unnesting ten one-element arrays cost more than the work itself: measured ~30 %
-- of a single-event append's time (docs/benchmarks.md). PostgresEventStore.append calls this one
-- for a single event and es.append for everything else; the contract suite covers both.

CREATE FUNCTION es.append_one(
    p_stream         text,
    p_expected       bigint,
    p_event_id       uuid,
    p_event_type     text,
    p_schema_version integer,
    p_payload        jsonb,
    p_metadata       jsonb,
    p_payload_hash   bytea,
    p_metadata_hash  bytea
) RETURNS TABLE (stream_version bigint, tx_id xid8, tx_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
BEGIN
    -- Lock the stream row and bump its version in one statement; a failed check below raises and
    -- undoes it. Writers of other streams never wait.
    UPDATE es.streams s SET version = s.version + 1 WHERE s.stream_id = p_stream
        RETURNING s.version - 1 INTO v_version;
    IF NOT FOUND THEN
        INSERT INTO es.streams AS s (stream_id, version) VALUES (p_stream, 1)
            ON CONFLICT DO NOTHING;
        IF FOUND THEN
            v_version := 0;
        ELSE  -- created by a concurrent writer since: wait for it, as above
            UPDATE es.streams s SET version = s.version + 1 WHERE s.stream_id = p_stream
                RETURNING s.version - 1 INTO v_version;
        END IF;
    END IF;

    -- Idempotent retry, looked for after the lock in a statement of its own (so it sees what
    -- committed while we waited): the original position, or LB002 if the id is used elsewhere.
    IF EXISTS (SELECT 1 FROM es.events e WHERE e.event_id = p_event_id) THEN
        UPDATE es.streams s SET version = v_version WHERE s.stream_id = p_stream;  -- undo
        RETURN QUERY
            SELECT r.stream_version, r.tx_id, r.tx_seq
              FROM es.append_retry(ARRAY[p_stream], ARRAY[p_expected], ARRAY[p_stream],
                                   ARRAY[p_event_id]) r;
        RETURN;
    END IF;

    IF (p_expected = 0 AND v_version <> 0)
       OR (p_expected = -2 AND v_version = 0)
       OR (p_expected > 0 AND v_version <> p_expected) THEN
        RAISE EXCEPTION 'stream % is at version %, expected %', p_stream, v_version,
            CASE p_expected WHEN 0 THEN 'no stream' WHEN -2 THEN 'exists'
                            ELSE p_expected::text END
            USING ERRCODE = 'LB001';
    END IF;

    RETURN QUERY
        INSERT INTO es.events AS e (stream_id, stream_version, event_id, event_type, schema_version,
                                    payload, metadata, payload_hash, metadata_hash)
        VALUES (p_stream, v_version + 1, p_event_id, p_event_type, p_schema_version, p_payload,
                p_metadata, p_payload_hash, p_metadata_hash)
        RETURNING e.stream_version, e.tx_id, e.tx_seq;
END $$;

-- Scalars only: PostgreSQL's plan cache settles on generic plans by itself, and a function-level
-- `SET plan_cache_mode` (saved and restored on every call) measured ~5 % slower than none.
