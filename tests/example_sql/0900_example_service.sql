-- Test only: the example services of tests/example_services.py (never in production migrations).
SELECT es.register_service('lookback_example', ARRAY['example']);
SELECT es.register_service('lookback_exampleconsumer', ARRAY[]::text[]);
