-- The registry's database role and the stream categories it alone appends to (es.register_service,
-- shared/sql/0002). It is also the one service that holds the personal-data keys (0010).
SELECT es.register_service('lookback_registry',
                           ARRAY['project', 'adaptation', 'liaison', 'registryimport']);

GRANT USAGE ON SCHEMA pii TO lookback_registry;
GRANT SELECT, INSERT ON pii.subject_keys TO lookback_registry;
GRANT UPDATE (key, erased_at) ON pii.subject_keys TO lookback_registry;
