-- Issue 12 (the notice's work, complete): who decides a close-out, refunds of deductions, and
-- what the service learns of a unit's 附件1 (liaisons). Numbered 0212 to stay clear of other
-- work on this service's migrations (numbers only need to be unique and ordered).

-- The requester's role decides who may judge a close-out (the unit's own reviewer asked: the
-- city bureau decides). NULL on rows of events recorded before the role was carried.
ALTER TABLE rectification.problems ADD COLUMN close_out_requester_role text;

-- What a deduction was for (NULL on deductions recorded before these were carried).
ALTER TABLE rectification.deductions
    ADD COLUMN trigger     text,
    ADD COLUMN deadline    text,
    ADD COLUMN problem_id  uuid;

-- 退还扣分: compensating events, one per refunded deduction; `rectification.scores.deducted` is
-- net of them.
CREATE TABLE rectification.refunds (
    event_id            uuid PRIMARY KEY,
    unit                text        NOT NULL,
    points              numeric     NOT NULL,
    rule_id             text        NOT NULL,
    trigger_ref         text        NOT NULL,
    deduction_event_id  uuid        NOT NULL,
    reason              text        NOT NULL,
    decided_by          text        NOT NULL,
    occurred_at         timestamptz
);
CREATE INDEX refunds_by_unit ON rectification.refunds (unit, rule_id, trigger_ref);

-- The registry's LiaisonRegistered (附件1), without phones: who the unit's 责任领导 and 联络员 are
-- (the 责任领导 is the 责任人 of an item nobody named) and when they were registered (the 附件1
-- deadline is scored here). One row per registration version.
CREATE TABLE rectification.liaisons (
    unit            text        NOT NULL,
    role            text        NOT NULL,
    version         integer     NOT NULL,
    name            text        NOT NULL,
    position        text        NOT NULL,
    submitted_late  boolean     NOT NULL,
    registered_at   timestamptz NOT NULL,
    PRIMARY KEY (unit, role, version)
);

GRANT ALL ON rectification.refunds, rectification.liaisons TO lookback_rectification;
GRANT SELECT ON rectification.refunds, rectification.liaisons TO lookback_auditor;
