"""One clock the test sets by hand, in the campaign's local time (the campaign lives in 2024)."""
from __future__ import annotations

from datetime import UTC, datetime

from shared.campaign import load_campaign

LOCAL = load_campaign().tz  # the packaged campaign file's time zone (Asia/Shanghai)


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0, second: int = 0) -> datetime:
    """A local instant of the campaign (10:00 unless told)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=LOCAL)


class Clock:
    """The clock a service and its consumers read. The test moves it (`clock.now = …` or
    `clock.set(2024, 3, 20)`). The service sees the instant as set, or with `utc=True` in UTC as
    the real clock gives it (the same instant: a test of local-time rules uses that)."""

    def __init__(self, now: datetime, *, utc: bool = False) -> None:
        self.now, self.utc = now, utc

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC) if self.utc else self.now

    def set(self, *local: int) -> None:
        """Move to a local instant, as `at(*local)`."""
        self.now = at(*local)
