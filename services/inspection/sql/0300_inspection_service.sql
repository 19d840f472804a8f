-- The inspection service's database role and the stream categories it alone appends to.
SELECT es.register_service('lookback_inspection', ARRAY['frame', 'draw', 'visit']);
