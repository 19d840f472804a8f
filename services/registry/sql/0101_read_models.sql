-- The registry's read models, derived from its own events (projections.py) and rebuildable from
-- the log at any time. The event store stays the source of truth: the project history query reads
-- the project's stream, not these tables.
--
-- Personal data: older people's names, addresses and phones, and officials' phones, appear here
-- only as per-subject ciphertext (`pii1.…`) or already masked (`138****0001`), never in clear.
CREATE SCHEMA registry;

-- Facility projects (complexes, community and rural centres, canteens), one row each.
CREATE TABLE registry.projects (
    project_id         text PRIMARY KEY,
    project_type       text        NOT NULL,
    name               text        NOT NULL,
    unit               text        NOT NULL,
    township           text        NOT NULL,
    township_code      text,
    village            text,
    project_year       integer     NOT NULL,
    provincial_key     boolean     NOT NULL,
    operator_kind      text        NOT NULL,
    operator_name      text,
    contract_start     date,
    contract_end       date,
    services           text[]      NOT NULL,
    meets_service_rule boolean     NOT NULL,
    claimed_status     text        NOT NULL,
    status             text        NOT NULL,
    status_reasons     text[]      NOT NULL,
    on_ledger          boolean     NOT NULL DEFAULT false,
    assessments        integer     NOT NULL DEFAULT 0,
    last_assessed_on   date,
    retired_reason_code text,
    retired_reason     text,
    retired_on         date,
    registered_at      timestamptz,
    updated_at         timestamptz,
    version            integer     NOT NULL
);
CREATE INDEX projects_by_unit_type_status ON registry.projects (unit, project_type, status);
CREATE INDEX projects_by_status ON registry.projects (status);

-- The 台账: every time a project became not operating or underperforming, until an assessment
-- found it operating with evidence (cleared_on set). Entries are never deleted.
CREATE TABLE registry.ledger (
    entry_id              text PRIMARY KEY,
    project_id            text    NOT NULL,
    project_type          text    NOT NULL,
    project_name          text    NOT NULL,
    project_year          integer NOT NULL,
    unit                  text    NOT NULL,
    township              text    NOT NULL,
    village               text,
    provincial_key        boolean NOT NULL,
    reason                text    NOT NULL,
    reason_details        text[]  NOT NULL,
    status                text    NOT NULL,
    listed_on             date    NOT NULL,
    cleared_on            date,
    cleared_assessment_no integer,
    cleared_by_assessor   text,
    clearing_evidence     text,
    clearing_attachments  text[]
);
CREATE INDEX ledger_by_unit ON registry.ledger (unit, listed_on);
CREATE INDEX ledger_open ON registry.ledger (unit) WHERE cleared_on IS NULL;

-- Home-adaptation programmes (one per unit, township and year) and their households.
CREATE TABLE registry.programmes (
    programme_id  text PRIMARY KEY,
    project_type  text    NOT NULL,
    name          text    NOT NULL,
    unit          text    NOT NULL,
    township      text    NOT NULL,
    township_code text,
    year          integer NOT NULL,
    households    integer NOT NULL DEFAULT 0,
    registered_at timestamptz,
    version       integer NOT NULL
);
CREATE INDEX programmes_by_unit ON registry.programmes (unit, township, year);

CREATE TABLE registry.households (
    household_id    text PRIMARY KEY,
    programme_id    text    NOT NULL REFERENCES registry.programmes (programme_id),
    household_code  text    NOT NULL,
    unit            text    NOT NULL,
    township        text    NOT NULL,
    village         text    NOT NULL,
    adaptation_year integer NOT NULL,
    items           text[]  NOT NULL,
    acceptance_date date    NOT NULL,
    subject_id      text    NOT NULL,
    name_sealed     text    NOT NULL CHECK (name_sealed LIKE 'pii1.%'),
    address_sealed  text    NOT NULL CHECK (address_sealed LIKE 'pii1.%'),
    phone_sealed    text             CHECK (phone_sealed LIKE 'pii1.%'),
    UNIQUE (programme_id, household_code)
);

-- 附件1: each unit's current responsible leader and liaison (later versions replace earlier ones
-- here; every version stays in the log).
CREATE TABLE registry.liaisons (
    unit                text    NOT NULL,
    role                text    NOT NULL CHECK (role IN ('leader', 'liaison')),
    version             integer NOT NULL,
    name                text    NOT NULL,
    gender              text    NOT NULL,
    position            text    NOT NULL,
    subject_id          text    NOT NULL,
    mobile_sealed       text    NOT NULL CHECK (mobile_sealed LIKE 'pii1.%'),
    mobile_masked       text    NOT NULL,
    office_phone_sealed text             CHECK (office_phone_sealed LIKE 'pii1.%'),
    office_phone_masked text,
    submitted_late      boolean NOT NULL,
    registered_at       timestamptz,
    PRIMARY KEY (unit, role)
);

-- Who saw personal data in clear (`?reveal=true`), when, for which unit and subjects; the values
-- themselves are never recorded. Append-only for the service: no UPDATE or DELETE granted.
CREATE TABLE registry.personal_data_access (
    access_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    accessed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id       text        NOT NULL,
    actor_name     text        NOT NULL,
    actor_role     text        NOT NULL,
    actor_unit     text,
    what           text        NOT NULL,
    unit           text,
    subject_ids    text[]      NOT NULL,
    fields         text[]      NOT NULL,
    correlation_id uuid
);

GRANT USAGE ON SCHEMA registry TO lookback_registry, lookback_auditor;
GRANT ALL ON registry.projects, registry.ledger, registry.programmes, registry.households,
    registry.liaisons TO lookback_registry;
GRANT SELECT, INSERT ON registry.personal_data_access TO lookback_registry;
GRANT SELECT ON ALL TABLES IN SCHEMA registry TO lookback_auditor;
