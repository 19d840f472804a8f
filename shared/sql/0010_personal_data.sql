-- Personal data of older people and officials (DOMAIN.md §8): crypto-shredding.
--
-- Personal fields are encrypted per subject (AES-GCM) and only the ciphertext enters the event log.
-- Erasing a subject nulls its key here: every ciphertext of that person becomes unreadable while
-- the log itself, and its hashes, stay untouched. The row is kept, marked erased, so that the same
-- subject can never be given a fresh key and silently "un-erased".

CREATE SCHEMA IF NOT EXISTS pii;

-- `key` is the subject's 256-bit key wrapped (AES-GCM: nonce, key, tag = 60 bytes) by a master key
-- held outside the database; `wrapped_by` names that master key (a hash, not the key).
CREATE TABLE pii.subject_keys (
    subject_id  text        PRIMARY KEY,
    key         bytea,
    wrapped_by  text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    erased_at   timestamptz,
    CONSTRAINT subject_keys_erased_has_no_key CHECK ((erased_at IS NULL) = (key IS NOT NULL)),
    CONSTRAINT subject_keys_key_is_wrapped CHECK (key IS NULL OR octet_length(key) = 60)
);

-- A key is written once; the only change allowed afterwards is erasure (key -> NULL).
CREATE FUNCTION pii.subject_keys_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'subject keys are erased, not deleted' USING ERRCODE = '42501';
    END IF;
    IF OLD.erased_at IS NOT NULL THEN
        RAISE EXCEPTION 'subject % is erased for good', OLD.subject_id USING ERRCODE = '42501';
    END IF;
    IF NEW.key IS NOT NULL AND NEW.key IS DISTINCT FROM OLD.key THEN
        RAISE EXCEPTION 'a subject key cannot be replaced' USING ERRCODE = '42501';
    END IF;
    IF NEW.subject_id IS DISTINCT FROM OLD.subject_id OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR (NEW.key IS NOT NULL AND NEW.wrapped_by IS DISTINCT FROM OLD.wrapped_by) THEN
        RAISE EXCEPTION 'subject_id and created_at are fixed' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER subject_keys_guard BEFORE UPDATE OR DELETE ON pii.subject_keys
    FOR EACH ROW EXECUTE FUNCTION pii.subject_keys_guard();
-- The service that holds personal data grants itself access in its own migration.
