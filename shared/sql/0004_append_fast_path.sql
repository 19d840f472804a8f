-- es.append: append one or many events to one or several streams, atomically, in one round trip.
-- p_expected per stream: -1 any, -2 exists, 0 no stream, n > 0 exactly version n. Raises LB001
-- (version mismatch) before writing anything, LB002 (ids that exist already, but not as a retry).
-- Measured in bench/store_bench.py (docs/benchmarks.md).
--
-- Most appends write to one stream. For those, three plain statements do the work: an UPDATE that
-- locks the stream row and bumps its version (RETURNING the old one), the look for existing ids,
-- and the INSERT. A check that fails raises and the whole call rolls back: nothing is written,
-- nothing is burned. (ON CONFLICT DO NOTHING instead of the look-up measured slower.)
-- Several streams take the general path (stream rows locked in sorted order, so multi-stream
-- appends cannot deadlock); the retry check, es.append_retry, is shared by both. Plans are
-- generic: PL/pgSQL re-planned the statements that take arrays on every call (a first version
-- written as one multi-CTE statement spent most of its time there).

-- Every id exists already: a retry is the same ids, in the same streams, at consecutive versions
-- starting where the original append started (the exact expected version, if one was given). A
-- retry returns the original positions; anything else raises LB002.
CREATE FUNCTION es.append_retry(
    p_streams text[], p_expected bigint[], p_event_streams text[], p_event_ids uuid[]
) RETURNS TABLE (stream_id text, stream_version bigint, event_id uuid, tx_id xid8, tx_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_existing bigint;
    v_total    integer := cardinality(p_event_ids);
BEGIN
    SELECT count(*) INTO v_existing FROM es.events e WHERE e.event_id = ANY (p_event_ids);
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
END $$;

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
    v_stream   text := p_streams[1];
    v_version  bigint;
BEGIN
    IF cardinality(p_streams) = 1 AND p_event_streams <@ p_streams THEN
        -- Lock the row and bump the version in one statement (writers of other streams never
        -- wait: there is no global lock or counter). A check that fails below raises, undoing it.
        UPDATE es.streams s SET version = s.version + v_total WHERE s.stream_id = v_stream
            RETURNING s.version - v_total INTO v_version;
        IF NOT FOUND THEN
            INSERT INTO es.streams AS s (stream_id, version) VALUES (v_stream, v_total)
                ON CONFLICT DO NOTHING;
            IF FOUND THEN
                v_version := 0;
            ELSE  -- created by a concurrent writer since: wait for it, as above
                UPDATE es.streams s SET version = s.version + v_total WHERE s.stream_id = v_stream
                    RETURNING s.version - v_total INTO v_version;
            END IF;
        END IF;
        -- Idempotent retry, checked after the lock, in a statement of its own: its snapshot
        -- includes what committed while we waited, so a concurrent twin sees the first one's rows.
        SELECT count(*) INTO v_existing FROM es.events e WHERE e.event_id = ANY (p_event_ids);
        IF v_existing > 0 THEN
            UPDATE es.streams s SET version = v_version WHERE s.stream_id = v_stream;  -- undo
            RETURN QUERY SELECT * FROM es.append_retry(p_streams, p_expected, p_event_streams,
                                                       p_event_ids);
            RETURN;
        END IF;
        v_expected := p_expected[1];
        IF (v_expected = 0 AND v_version <> 0)
           OR (v_expected = -2 AND v_version = 0)
           OR (v_expected > 0 AND v_version <> v_expected) THEN
            RAISE EXCEPTION 'stream % is at version %, expected %', v_stream, v_version,
                CASE v_expected WHEN 0 THEN 'no stream' WHEN -2 THEN 'exists'
                                ELSE v_expected::text END
                USING ERRCODE = 'LB001';
        END IF;
        -- Rows are inserted, and so returned, in the order given.
        RETURN QUERY
            INSERT INTO es.events AS e (stream_id, stream_version, event_id, event_type,
                                        schema_version, payload, metadata, payload_hash,
                                        metadata_hash)
            SELECT v_stream, v_version + n.ord, n.id, n.typ, n.sv, n.pl, n.md, n.ph, n.mh
              FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_payloads, p_metadata,
                          p_payload_hashes, p_metadata_hashes)
                   WITH ORDINALITY AS n(id, typ, sv, pl, md, ph, mh, ord)
             ORDER BY n.ord
            RETURNING e.stream_id, e.stream_version, e.event_id, e.tx_id, e.tx_seq;
        RETURN;
    END IF;

    -- Several streams: lock the rows in sorted order (no deadlock between multi-stream appends).
    INSERT INTO es.streams AS s (stream_id)
        SELECT DISTINCT u FROM unnest(p_streams) AS u ORDER BY 1
        ON CONFLICT DO NOTHING;
    PERFORM 1 FROM es.streams s WHERE s.stream_id = ANY (p_streams) ORDER BY s.stream_id FOR UPDATE;
    -- Idempotent retry, checked after the locks so a concurrent twin sees the first one's rows.
    SELECT count(*) INTO v_existing FROM es.events e WHERE e.event_id = ANY (p_event_ids);
    IF v_existing > 0 THEN
        RETURN QUERY SELECT * FROM es.append_retry(p_streams, p_expected, p_event_streams,
                                                   p_event_ids);
        RETURN;
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

-- Plan each statement once per session (see above).
ALTER FUNCTION es.append(text[], bigint[], text[], uuid[], text[], integer[], jsonb[], jsonb[],
                         bytea[], bytea[])
    SET plan_cache_mode = force_generic_plan;
