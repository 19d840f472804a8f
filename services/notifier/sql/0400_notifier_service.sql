-- The notifier service's database role and the stream categories it alone appends to.
SELECT es.register_service('lookback_notifier', ARRAY['notice', 'reminder']);
