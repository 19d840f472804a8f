-- The rectification service's read models. Everything here is derived and can be rebuilt from the
-- log: the registry view from registry events (consumer "rectification.registry-view"), the ledger
-- links by the reaction to 台账 entries (consumer "rectification.on-registry"), the rest from the
-- service's own events (projections "rectification.projection-*").
CREATE SCHEMA rectification;

-- ---- What the rectification service learned of the registry (no personal data) ----------------

-- Facilities and home-adaptation programmes. A row may be created by whichever event arrives
-- first, so columns a later event does not carry are nullable or defaulted; the `*_version`
-- columns are the registry stream version that last set them, so a late redelivery of an older
-- event never overwrites a newer fact.
CREATE TABLE rectification.projects (
    project_id             text PRIMARY KEY,
    project_type           text,
    name                   text    NOT NULL DEFAULT '',
    unit                   text    NOT NULL,
    township               text    NOT NULL,
    project_year           integer,
    registered             boolean NOT NULL DEFAULT false,
    operating_status       text,
    status_version         bigint  NOT NULL DEFAULT 0,
    on_ledger              boolean NOT NULL DEFAULT false,
    ledger_entry_id        text,
    ledger_reason          text,
    ledger_reason_details  text[]  NOT NULL DEFAULT '{}',
    listed_on              date,
    ledger_version         bigint  NOT NULL DEFAULT 0
);
CREATE INDEX projects_by_unit ON rectification.projects (unit, project_type);

-- Each registry ledger entry seen, and the item it opened (none when one was already open for
-- the same project and reason: `blocked_by` names it). Written in the consumer's transaction, so
-- the "already open?" check never depends on a projection catching up.
CREATE TABLE rectification.ledger_links (
    entry_id     text PRIMARY KEY,
    project_id   text        NOT NULL,
    reason       text        NOT NULL,
    problem_id   uuid,
    blocked_by   uuid[]      NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL
);
CREATE INDEX ledger_links_by_project ON rectification.ledger_links (project_id);

-- ---- Problem items ------------------------------------------------------------------------------

-- One row per item: the stream folded by domain.evolve up to `version`. `overdue` is derived at
-- query time (open and past the last instant of `deadline`, campaign time zone), never stored.
CREATE TABLE rectification.problems (
    problem_id              uuid PRIMARY KEY,
    unit                    text        NOT NULL,
    seq_no                  integer     NOT NULL,
    status                  text        NOT NULL,
    project_id              text        NOT NULL,
    project_name            text        NOT NULL,
    township                text        NOT NULL,
    project_year            integer     NOT NULL,
    description             text        NOT NULL,
    deadline                date,
    deadline_kind           text        NOT NULL,
    responsible_person      text        NOT NULL,
    source                  text        NOT NULL,
    source_ref              text,
    ledger_reason           text,
    reopened_from           uuid,
    reopened_as             uuid,
    registered_by           text        NOT NULL,
    registered_at           timestamptz,
    plan                    text,
    close_out_requested_by  text,
    evidence_text           text,
    evidence_hashes         text[]      NOT NULL DEFAULT '{}',
    flagged_hashes          text[]      NOT NULL DEFAULT '{}',
    verified_by             text,
    verifier_role           text,
    closed_at               timestamptz,
    times_returned          integer     NOT NULL DEFAULT 0,
    pending_new_deadline    date,
    pending_reason          text,
    pending_requested_by    text,
    extensions_granted      integer     NOT NULL DEFAULT 0,
    withdrawn_by            text,
    withdrawn_at            timestamptz,
    version                 bigint      NOT NULL
);
CREATE INDEX problems_by_unit ON rectification.problems (unit, seq_no);
CREATE INDEX problems_by_project ON rectification.problems (project_id, source);

-- Every event of every item, with who did it (from the event's metadata).
CREATE TABLE rectification.problem_history (
    event_id        uuid PRIMARY KEY,
    problem_id      uuid        NOT NULL,
    stream_version  bigint      NOT NULL,
    event_type      text        NOT NULL,
    occurred_at     timestamptz,
    actor_id        text        NOT NULL,
    actor_name      text        NOT NULL,
    actor_role      text        NOT NULL,
    payload         jsonb       NOT NULL
);
CREATE INDEX problem_history_by_item ON rectification.problem_history (problem_id, stream_version);

-- Attachment hash → the items it was filed for (纸面销号: one photo closing two items).
CREATE TABLE rectification.evidence (
    content_hash  text        NOT NULL,
    problem_id    uuid        NOT NULL,
    unit          text        NOT NULL,
    filed_at      timestamptz NOT NULL,
    PRIMARY KEY (content_hash, problem_id)
);

-- 序号 handed out per unit.
CREATE TABLE rectification.unit_counters (
    unit         text PRIMARY KEY,
    last_seq_no  integer NOT NULL,
    allocated    integer NOT NULL
);

-- ---- Reports ----------------------------------------------------------------------------------

-- Monthly lists (with their frozen 附件2 rows), self-inspection reports, typical cases: each the
-- report's stream folded by domain.evolve_report up to `stream_version`.
CREATE TABLE rectification.reports (
    report_id           text PRIMARY KEY,
    kind                text        NOT NULL,
    unit                text        NOT NULL,
    period              text        NOT NULL DEFAULT '',
    status              text,
    version             integer     NOT NULL,
    submitted_by        text,
    submitter           text,
    submitted_at        timestamptz,
    first_submitted_at  timestamptz,
    due                 timestamptz,
    late                boolean     NOT NULL DEFAULT false,
    rows                jsonb       NOT NULL DEFAULT '[]',
    title               text        NOT NULL DEFAULT '',
    text                text        NOT NULL DEFAULT '',
    attachment_hashes   text[]      NOT NULL DEFAULT '{}',
    reviewed_by         text,
    reviewer            text,
    reviewed_at         timestamptz,
    comments            text[]      NOT NULL DEFAULT '{}',
    stream_version      bigint      NOT NULL
);
CREATE INDEX reports_by_unit ON rectification.reports (unit, kind);

-- ---- Scores -----------------------------------------------------------------------------------

CREATE TABLE rectification.deductions (
    event_id       uuid PRIMARY KEY,
    unit           text        NOT NULL,
    points         numeric     NOT NULL,
    rule_id        text        NOT NULL,
    trigger_ref    text        NOT NULL,
    reason         text        NOT NULL,
    discretionary  boolean     NOT NULL,
    decided_by     text        NOT NULL,
    occurred_at    timestamptz
);
CREATE INDEX deductions_by_unit ON rectification.deductions (unit, rule_id, trigger_ref);

CREATE TABLE rectification.scores (
    unit        text PRIMARY KEY,
    deducted    numeric NOT NULL,
    deductions  integer NOT NULL
);

GRANT USAGE ON SCHEMA rectification TO lookback_rectification, lookback_auditor;
GRANT ALL ON ALL TABLES IN SCHEMA rectification TO lookback_rectification;
GRANT SELECT ON ALL TABLES IN SCHEMA rectification TO lookback_auditor;
