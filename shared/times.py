"""Times as people and programs read them: one offset in the API, Chinese dates on screens and paper.

The event store and the database keep instants (aware datetimes; PostgreSQL hands them back in
UTC). What leaves a service is written in ONE convention (docs/adr/0023): the campaign's time zone
(`Asia/Shanghai`, so `+08:00`) for every instant in a JSON answer, whichever service answers and
whether the value came from an event, a read model or the clock. A due time is then the same
string in every service, and a person comparing two answers sees the same wall-clock time.

Screens and paper write dates as people write them: `2024年3月25日`, `2024年3月25日 14:30`.
Plain dates (a 整改限期, a project year's acceptance date) have no time zone and are left as they are.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from typing import Any


def local(moment: datetime, tz: tzinfo) -> datetime:
    """The instant in the campaign's time zone; a naive datetime is refused (it names no instant)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime names no instant; give it a time zone")
    return moment.astimezone(tz)


def iso_local(moment: datetime | None, tz: tzinfo) -> str | None:
    """ISO 8601 with the campaign's offset (`2024-03-25T23:59:59+08:00`); None stays None."""
    return None if moment is None else local(moment, tz).isoformat()


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant as stored in metadata (`…Z` or `…+00:00`); refuses a naive one."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return moment


def json_value(value: Any, tz: tzinfo) -> Any:
    """A value for a JSON answer: instants in the campaign's offset, dates as `YYYY-MM-DD`,
    containers walked (dicts, lists, tuples); everything else as it is."""
    if isinstance(value, datetime):
        return iso_local(value, tz)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: json_value(item, tz) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item, tz) for item in value]
    return value


def written_date(day: date | datetime | None, tz: tzinfo | None = None) -> str:
    """`2024年3月25日`, as people write a date (no leading zeros); an instant is taken in `tz`.
    Empty for None, so a blank cell stays blank."""
    if day is None:
        return ""
    if isinstance(day, datetime):
        if tz is None:
            raise ValueError("an instant needs the time zone it is written in")
        day = local(day, tz).date()
    return f"{day.year}年{day.month}月{day.day}日"


def written_datetime(moment: datetime | None, tz: tzinfo) -> str:
    """`2024年3月25日 14:30` in the campaign's time zone; empty for None."""
    if moment is None:
        return ""
    at = local(moment, tz)
    return f"{written_date(at.date())} {at.hour:02d}:{at.minute:02d}"
