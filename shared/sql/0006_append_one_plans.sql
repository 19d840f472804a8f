-- es.append_one takes scalars only: PostgreSQL's plan cache settles on generic plans by itself,
-- and the per-call save/restore of a function-level setting measured slower (~5 %) than none.
ALTER FUNCTION es.append_one(text, bigint, uuid, text, integer, jsonb, jsonb, bytea, bytea)
    RESET plan_cache_mode;
