-- What the registry learns from rectification (subscribers.py): the problem items it registered
-- (a view of its events, enough to tell which 台账 entry an item stands for), and on the ledger
-- the 整改完成 mark a verified 销号 puts on an entry until the next assessment.

-- Every problem item rectification registered, from its ProblemRegistered events: which project,
-- and for an item opened from the 台账 (or a 反弹 of one) the entry it stands for.
CREATE TABLE registry.rectification_items (
    problem_id    uuid PRIMARY KEY,
    unit          text        NOT NULL,
    project_id    text        NOT NULL,
    source        text        NOT NULL,
    entry_id      text,
    ledger_reason text,
    seq_no        integer     NOT NULL,
    reopened_from uuid,
    registered_at timestamptz NOT NULL
);
CREATE INDEX rectification_items_by_entry ON registry.rectification_items (entry_id)
    WHERE entry_id IS NOT NULL;

ALTER TABLE registry.ledger
    ADD COLUMN rectified_problem_id     text,
    ADD COLUMN rectified_seq_no         integer,
    ADD COLUMN rectified_at             timestamptz,
    ADD COLUMN rectified_by             text,
    ADD COLUMN rectified_verifier_role  text,
    ADD COLUMN rectification_conclusion text,
    ADD COLUMN rectification_event_id   text,
    ADD COLUMN superseded_by            text,
    ADD COLUMN superseded_on            date;

ALTER TABLE registry.projects ADD COLUMN ledger_rectified boolean NOT NULL DEFAULT false;

GRANT ALL ON registry.rectification_items TO lookback_registry;
GRANT SELECT ON registry.rectification_items TO lookback_auditor;
