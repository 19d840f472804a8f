"""The Ezhou 2024 campaign played through the services' HTTP APIs: `scenario.py` (the people and
what they do, on a movable clock) and `cli.py` (`lookback demo`, on the embedded default)."""
