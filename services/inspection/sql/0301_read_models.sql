-- The inspection service's read models. Everything here is derived and can be rebuilt from the log:
-- the registry view from registry events (consumer "inspection.on-registry"), the rest from the
-- service's own draw events (projection "inspection.projection-draws").
CREATE SCHEMA inspection;

-- ---- What the inspection service learned of the registry (no personal data) -------------------

-- Facilities and home-adaptation programmes. A row may be created by whichever event arrives
-- first (a redelivered ProjectRegistered can come after ProjectRetired), so every column a later
-- event does not carry is nullable and `registered` says whether the registration was seen.
CREATE TABLE inspection.projects (
    project_id           text PRIMARY KEY,
    kind                 text    NOT NULL CHECK (kind IN ('facility', 'programme')),
    project_type         text    NOT NULL,
    unit                 text    NOT NULL,
    township             text    NOT NULL,
    name                 text    NOT NULL DEFAULT '',
    project_year         integer,
    provincial_key       boolean NOT NULL DEFAULT false,
    -- which event set the flag: 0 = the registration, n = assessment n; an older one never wins
    provincial_key_as_of integer NOT NULL DEFAULT -1,
    registered           boolean NOT NULL DEFAULT false,
    retired              boolean NOT NULL DEFAULT false,
    retired_reason_code  text,
    retired_reason       text,
    retired_on           date
);
CREATE INDEX projects_by_unit ON inspection.projects (unit, project_type);

-- Adapted households: a code and a place, never a name, an address or a phone.
CREATE TABLE inspection.households (
    household_id    text PRIMARY KEY,
    household_code  text    NOT NULL,
    programme_id    text    NOT NULL,
    unit            text    NOT NULL,
    township        text    NOT NULL,
    adaptation_year integer NOT NULL
);
CREATE INDEX households_by_unit ON inspection.households (unit, township);

-- ---- The service's own draws -------------------------------------------------------------------

CREATE TABLE inspection.draws (
    draw_id            text PRIMARY KEY,
    title              text        NOT NULL,
    stage              text        NOT NULL CHECK (stage IN ('frozen', 'committed', 'revealed', 'drawn')),
    algorithm_version  text        NOT NULL,
    units              text[]      NOT NULL,
    frames_digest      text        NOT NULL,
    entropy_statement  text,
    entropy_not_before timestamptz,
    entropy            text,
    frozen_at          timestamptz NOT NULL,
    committed_at       timestamptz,
    revealed_at        timestamptz,
    drawn_at           timestamptz,
    -- labels frozen with the frame, so picks can be shown with names and places
    project_labels     jsonb       NOT NULL,
    household_labels   jsonb       NOT NULL
);

-- One row per stratum (unit, project type), empty strata included (无符合条件项目 is explicit).
CREATE TABLE inspection.draw_strata (
    draw_id             text    NOT NULL REFERENCES inspection.draws (draw_id),
    stratum             text    NOT NULL,
    unit                text    NOT NULL,
    project_type        text    NOT NULL,
    rule                text    NOT NULL,
    frame_digest        text    NOT NULL,
    frame_size          integer NOT NULL,
    excluded            integer NOT NULL,
    sample_size         integer,
    replacements        integer,
    no_eligible_project boolean,
    insufficient_sample boolean,
    township            text,
    PRIMARY KEY (draw_id, stratum)
);

-- The sample per unit: rule picks, discretionary picks and households that entered by
-- replacement; a replaced household stays, with in_sample = false and why.
CREATE TABLE inspection.draw_picks (
    draw_id      text    NOT NULL REFERENCES inspection.draws (draw_id),
    target_kind  text    NOT NULL CHECK (target_kind IN ('project', 'household')),
    target_id    text    NOT NULL,
    unit         text    NOT NULL,
    stratum      text,
    project_type text    NOT NULL,
    selection    text    NOT NULL CHECK (selection IN ('R1', 'R2', 'R3', 'discretionary', 'replacement')),
    sequence_no  integer,           -- 1-based place in the stratum's pick sequence (null: discretionary)
    in_sample    boolean NOT NULL DEFAULT true,
    replaces     text,              -- for a replacement: the household it replaced
    replaced_by  text,              -- for a replaced household: who took its place
    reason_code  text,              -- for a replaced household: why it could not be visited
    reason       text,              -- for a discretionary pick: why it was added
    project_id   text    NOT NULL,  -- the project, or the programme of a household
    name         text    NOT NULL DEFAULT '',
    township     text    NOT NULL,
    project_year integer,
    PRIMARY KEY (draw_id, target_kind, target_id)
);
CREATE INDEX draw_picks_by_unit ON inspection.draw_picks (draw_id, unit);

CREATE TABLE inspection.visits (
    draw_id            text    NOT NULL REFERENCES inspection.draws (draw_id),
    visit_id           text    NOT NULL,
    target_kind        text    NOT NULL,
    target_id          text    NOT NULL,
    unit               text    NOT NULL,
    project_type       text    NOT NULL,
    scheduled_for      date    NOT NULL,
    inspector_ids      text[]  NOT NULL,
    outcome            text CHECK (outcome IN ('passed', 'problems_found', 'unable_to_enter')),
    unable_reason_code text,
    visited_on         date,
    checklist          jsonb,
    photo_hashes       text[],
    findings           integer NOT NULL DEFAULT 0,
    PRIMARY KEY (draw_id, visit_id)
);
CREATE INDEX visits_by_unit ON inspection.visits (draw_id, unit);

CREATE TABLE inspection.findings (
    finding_id     text PRIMARY KEY,
    draw_id        text    NOT NULL REFERENCES inspection.draws (draw_id),
    visit_id       text    NOT NULL,
    project_id     text    NOT NULL,
    household_code text,
    unit           text    NOT NULL,
    project_type   text    NOT NULL,
    project_name   text    NOT NULL,
    township       text    NOT NULL,
    project_year   integer,
    text           text    NOT NULL,
    deadline       date    NOT NULL,
    found_on       date    NOT NULL
);
CREATE INDEX findings_by_unit ON inspection.findings (draw_id, unit);

-- Visit progress per unit, kept as counters (the same numbers as domain.visit_progress).
CREATE TABLE inspection.visit_progress (
    draw_id             text    NOT NULL REFERENCES inspection.draws (draw_id),
    unit                text    NOT NULL,
    sampled             integer NOT NULL DEFAULT 0,
    scheduled           integer NOT NULL DEFAULT 0,
    inspected           integer NOT NULL DEFAULT 0,
    passed              integer NOT NULL DEFAULT 0,
    problems_found      integer NOT NULL DEFAULT 0,
    unable_to_enter     integer NOT NULL DEFAULT 0,
    findings            integer NOT NULL DEFAULT 0,
    no_eligible_strata  text[]  NOT NULL DEFAULT '{}',
    insufficient_sample boolean NOT NULL DEFAULT false,
    PRIMARY KEY (draw_id, unit)
);

GRANT USAGE ON SCHEMA inspection TO lookback_inspection, lookback_auditor;
GRANT ALL ON ALL TABLES IN SCHEMA inspection TO lookback_inspection;
GRANT SELECT ON ALL TABLES IN SCHEMA inspection TO lookback_auditor;
