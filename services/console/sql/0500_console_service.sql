-- The console's own tables: people's accounts, their sessions, sign-in throttling and the record
-- of evidence files uploaded through it. None of this is a domain fact (those are events in the
-- services' streams); it is how people reach the system. The console's role touches only this
-- schema: it is given no access to the event store at all, so everything it shows of the domain
-- it has asked a service for, as the person signed in (docs/adr/0014).
CREATE SCHEMA console;

-- A person who signs in. `account_id` is the sign-in name and the actor id written into the
-- metadata of every event the person causes; `role` and `unit` are what the services check.
CREATE TABLE console.accounts (
    account_id     text        PRIMARY KEY CHECK (account_id ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    display_name   text        NOT NULL CHECK (length(display_name) BETWEEN 1 AND 64),
    role           text        NOT NULL,
    unit           text,
    password_hash  text        NOT NULL,            -- argon2id, with its own salt and parameters
    created_at     timestamptz NOT NULL,
    disabled_at    timestamptz
);

-- Only the SHA-256 of a session's cookie is kept: a copy of this table signs nobody in.
CREATE TABLE console.sessions (
    session_hash  text        PRIMARY KEY,
    account_id    text        NOT NULL REFERENCES console.accounts ON DELETE CASCADE,
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_by_account ON console.sessions (account_id);

-- Failed sign-ins per account and per address: each failure makes the next attempt wait longer,
-- and enough of them lock the account or the address for a while.
CREATE TABLE console.sign_in_failures (
    kind             text        NOT NULL CHECK (kind IN ('account', 'address')),
    key              text        NOT NULL,
    failures         integer     NOT NULL,
    last_failure_at  timestamptz NOT NULL,
    locked_until     timestamptz,
    PRIMARY KEY (kind, key)
);

-- Evidence files by content hash (the content itself is in the evidence store, a folder by
-- default): what it is, and who uploaded it when. Who may see a file is asked of the services.
CREATE TABLE console.evidence_files (
    content_hash  text        PRIMARY KEY CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    media_type    text        NOT NULL,
    size_bytes    bigint      NOT NULL CHECK (size_bytes > 0),
    first_uploaded_at timestamptz NOT NULL
);
CREATE TABLE console.evidence_uploads (
    content_hash  text        NOT NULL REFERENCES console.evidence_files,
    account_id    text        NOT NULL,
    unit          text,
    filename      text        NOT NULL,
    uploaded_at   timestamptz NOT NULL,
    PRIMARY KEY (content_hash, account_id)
);

GRANT USAGE ON SCHEMA console TO lookback_console;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA console TO lookback_console;
