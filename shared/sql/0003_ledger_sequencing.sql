-- The sequencer's write path: one call per batch puts new ledger rows, the tree head and (when due)
-- a signed checkpoint in one transaction, guarded by a compare-and-set on the tree size.

-- The exact signed checkpoint note (docs/audit-format.md §5), so an export reproduces it byte for
-- byte even if the configured origin changes later.
ALTER TABLE es.checkpoints ADD COLUMN note text;

CREATE FUNCTION es.sequence_batch(
    p_expected_size   bigint,
    p_stream_ids      text[],
    p_stream_versions bigint[],
    p_event_ids       uuid[],
    p_event_types     text[],
    p_payload_hashes  bytea[],
    p_metadata_hashes bytea[],
    p_leaf_hashes     bytea[],
    p_tx_ids          xid8[],
    p_tx_seqs         bigint[],
    p_frontier        bytea[],
    p_checkpoint_root      bytea DEFAULT NULL,
    p_checkpoint_key_id    text  DEFAULT NULL,
    p_checkpoint_signature bytea DEFAULT NULL,
    p_checkpoint_note      text  DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_count    integer := coalesce(cardinality(p_event_ids), 0);
    v_new_size bigint := p_expected_size + v_count;
BEGIN
    -- The state row first: its row lock plus the size check make a second, stale sequencer fail
    -- here instead of writing positions twice (the advisory lock should already prevent that).
    UPDATE es.sequencer_state
       SET tree_size = v_new_size,
           frontier = p_frontier,
           last_tx_id = CASE WHEN v_count > 0 THEN p_tx_ids[v_count] ELSE last_tx_id END,
           last_tx_seq = CASE WHEN v_count > 0 THEN p_tx_seqs[v_count] ELSE last_tx_seq END
     WHERE tree_size = p_expected_size;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sequencer state is not at tree size % (another sequencer ran?)',
            p_expected_size USING ERRCODE = 'LB020';
    END IF;

    INSERT INTO es.ledger (global_position, stream_id, stream_version, event_id, event_type,
                           payload_hash, metadata_hash, leaf_hash, tx_id, tx_seq)
    SELECT p_expected_size + u.ord, u.sid, u.sv, u.eid, u.typ, u.ph, u.mh, u.lh, u.txid, u.txseq
      FROM unnest(p_stream_ids, p_stream_versions, p_event_ids, p_event_types, p_payload_hashes,
                  p_metadata_hashes, p_leaf_hashes, p_tx_ids, p_tx_seqs)
           WITH ORDINALITY AS u(sid, sv, eid, typ, ph, mh, lh, txid, txseq, ord);

    IF p_checkpoint_note IS NOT NULL THEN
        INSERT INTO es.checkpoints (tree_size, root_hash, key_id, signature, signed_at, note)
        VALUES (v_new_size, p_checkpoint_root, p_checkpoint_key_id, p_checkpoint_signature,
                clock_timestamp(), p_checkpoint_note);
    END IF;

    -- A wake-up hint for ledger readers, delivered at commit. Only the one sequencer notifies, so
    -- the notify queue's commit-time lock is never contended by appenders.
    IF v_count > 0 THEN
        PERFORM pg_notify('es_ledger', v_new_size::text);
    END IF;
    RETURN v_new_size;
END $$;

REVOKE ALL ON FUNCTION es.sequence_batch(bigint, text[], bigint[], uuid[], text[], bytea[], bytea[],
    bytea[], xid8[], bigint[], bytea[], bytea, text, bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION es.sequence_batch(bigint, text[], bigint[], uuid[], text[], bytea[],
    bytea[], bytea[], xid8[], bigint[], bytea[], bytea, text, bytea, text) TO lookback_sequencer;
