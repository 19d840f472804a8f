-- The notifier's read models and its contact directory. Everything but the directory is derived
-- from the notifier's own events (projections "notifier.projection-*") and can be rebuilt.
CREATE SCHEMA notifier;

-- Each obligation the notifier has events for, folded by domain/obligations.py up to `version`
-- (campaign deadlines without any event yet are not here: the campaign file lists them).
CREATE TABLE notifier.obligations (
    obligation_id  text PRIMARY KEY,
    unit           text        NOT NULL,
    kind           text        NOT NULL,
    status         text        NOT NULL,
    due_on         date,
    state          jsonb       NOT NULL,
    version        bigint      NOT NULL
);
CREATE INDEX obligations_by_unit ON notifier.obligations (unit, kind);

-- Each claimed reminder, folded from its stream up to `version`; status claimed | sent | failed.
CREATE TABLE notifier.reminders (
    reminder_id      uuid PRIMARY KEY,
    obligation_id    text        NOT NULL,
    unit             text        NOT NULL,
    obligation_kind  text        NOT NULL,
    kind             text        NOT NULL,
    audience         text        NOT NULL,
    scheduled_for    timestamptz NOT NULL,
    due_on           date        NOT NULL,
    status           text        NOT NULL,
    attempt          integer     NOT NULL,
    instance_id      text        NOT NULL,
    message_id       text        NOT NULL,
    subject          text        NOT NULL,
    claimed_at       timestamptz,
    version          bigint      NOT NULL
);
CREATE INDEX reminders_by_unit ON notifier.reminders (unit, scheduled_for);
CREATE INDEX reminders_unfinished ON notifier.reminders (reminder_id) WHERE status = 'claimed';

-- One row per channel of a claimed reminder; outcome pending | sent | failed. Masked only.
CREATE TABLE notifier.deliveries (
    reminder_id       uuid        NOT NULL,
    channel           text        NOT NULL,
    recipient_masked  text        NOT NULL,
    outcome           text        NOT NULL,
    attempts          integer,
    reason            text,
    recorded_at       timestamptz,
    PRIMARY KEY (reminder_id, channel)
);

-- The contact directory: NOT derived from events. Officials' addresses are personal data and a
-- webhook URL holds a robot's key, so they live here, where a row can be corrected or erased,
-- and events carry masked copies only (services/notifier/directory.py).
CREATE TABLE notifier.contacts (
    unit            text        NOT NULL,
    audience        text        NOT NULL CHECK (audience IN ('liaison', 'leader')),
    email           text,
    webhook_url     text,
    webhook_format  text        NOT NULL DEFAULT 'json',
    source          text        NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (unit, audience),
    CHECK (email IS NOT NULL OR webhook_url IS NOT NULL)
);

GRANT USAGE ON SCHEMA notifier TO lookback_notifier, lookback_auditor;
GRANT ALL ON ALL TABLES IN SCHEMA notifier TO lookback_notifier;
-- The auditor reads what was sent and why, never the directory.
GRANT SELECT ON notifier.obligations, notifier.reminders, notifier.deliveries TO lookback_auditor;
