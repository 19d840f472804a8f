-- Decisions about dead letters (replay, discard) are events, in the kernel's own category
-- `deadletter` (streams `deadletter-<consumer>`), owned by the kernel role lookback_operator: no
-- service names it, and no service may write it (ADR 0007). The operator also removes the rows
-- it decided about.
SELECT es.register_service('lookback_operator', ARRAY['deadletter']);
GRANT DELETE ON es.dead_letters TO lookback_operator;
