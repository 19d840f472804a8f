"""What every test folder shares (service-specific helpers stay in their service's folder):

- `actors`: one actor per role and unit, one naming scheme, their tokens (`auth(id)`);
- `clock`: `at(...)` a local instant of the campaign, `Clock` the settable clock a service reads;
- `databases`: the test PostgreSQL, a fresh database per test (with a connection limit), `fetchval`
  and counts on a DSN, the event store as another service writes to it (`store_as`);
- `services`: settings sized for tests, `running(app)`, the clean-up of a test's broker names;
- `polling`: `eventually`, a poll with a deadline;
- `faults`: a TCP proxy a test can cut;
- `isolation`: the guards that keep unit tests off the servers and every test in its budget.
"""
