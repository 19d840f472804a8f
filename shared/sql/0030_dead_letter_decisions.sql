-- Decisions about dead letters (replay, discard) are events, in the kernel's own category
-- `deadletter` (streams `deadletter-<consumer>`), owned by the kernel role lookback_operator: no
-- service names it, and no service may write it (ADR 0007). The operator also removes the rows
-- it decided about.
SELECT es.register_service('lookback_operator', ARRAY['deadletter']);
GRANT DELETE ON es.dead_letters TO lookback_operator;
-- The operator decides about any consumer's dead letters (row security lets each service role see
-- only its own, 0020): it reads and removes them all, and adds none.
CREATE POLICY dead_letters_operator ON es.dead_letters FOR SELECT TO lookback_operator USING (true);
CREATE POLICY dead_letters_operator_removes ON es.dead_letters FOR DELETE TO lookback_operator
    USING (true);
