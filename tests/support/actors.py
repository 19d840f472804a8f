"""The people tests act as: one actor per role and unit, one naming scheme, and their tokens.

An actor's id is its handle everywhere: `rep-<unit>-<n>` (填报人), `rev-<unit>-<n>` (审核人),
`insp-<n>` (专班检查员), `admin-<n>` (市局管理员), `leader-1`, `auditor-1`. Its bearer token is
`tok-<id>`; `auth(id)` is the header a request sends. Every actor below has a token in `TOKENS_JSON`,
so any service a test starts knows all of them.
"""
from __future__ import annotations

import json

from shared.auth import hash_token
from shared.campaign import load_campaign
from shared.messages import Actor, Role

# The reporting units of the packaged campaign file (Ezhou 2024), in its order.
UNITS: list[str] = list(load_campaign().unit_codes)
_SHORT_NAMES = {"echeng": "鄂城", "huarong": "华容", "liangzihu": "梁子湖", "gedian": "葛店",
                "linkong": "临空"}
_ORDINALS = {1: "", 2: "二", 3: "三"}


def _nth(n: int) -> str:
    return _ORDINALS.get(n, str(n))


def reporter(unit: str = "echeng", n: int = 1) -> Actor:
    """A district's 填报人 (reports, registers, requests close-out)."""
    return Actor(id=f"rep-{unit}-{n}", name=f"{_SHORT_NAMES[unit]}填报人{_nth(n)}(示例)",
                 role=Role.DISTRICT_REPORTER, unit=unit)


def reviewer(unit: str = "echeng", n: int = 1) -> Actor:
    """A district's 审核人 (verifies, reviews)."""
    return Actor(id=f"rev-{unit}-{n}", name=f"{_SHORT_NAMES[unit]}审核人{_nth(n)}(示例)",
                 role=Role.DISTRICT_REVIEWER, unit=unit)


def inspector(n: int = 1) -> Actor:
    """A member of the city's inspection task force (专班)."""
    return Actor(id=f"insp-{n}", name=f"检查员{_nth(n)}(示例)", role=Role.INSPECTOR)


def city_admin(n: int = 1) -> Actor:
    return Actor(id=f"admin-{n}", name=f"市局管理员{_nth(n)}(示例)", role=Role.CITY_ADMIN)


LEADER = Actor(id="leader-1", name="分管领导(示例)", role=Role.LEADER)
AUDITOR = Actor(id="auditor-1", name="审计员(示例)", role=Role.AUDITOR)

# Every role, every unit, two of each person where a rule needs another one (四眼: the verifier is
# not the requester).
PRINCIPALS: dict[str, Actor] = {a.id: a for a in (
    city_admin(1), city_admin(2), inspector(1), inspector(2), LEADER, AUDITOR,
    *(person(unit, n) for unit in UNITS for person in (reporter, reviewer) for n in (1, 2)))}


def token(actor_id: str) -> str:
    return f"tok-{actor_id}"


def auth(actor_id: str, *, after: str | None = None) -> dict[str, str]:
    """The headers of a request sent by `actor_id` (an id of `PRINCIPALS`, or any text for a token
    nobody holds); `after`, a consistency token, makes the read wait for that write (ADR 0013)."""
    headers = {"Authorization": f"Bearer {token(actor_id)}"}
    if after is not None:
        headers["X-Lookback-After"] = after
    return headers


TOKENS_JSON = json.dumps({hash_token(token(actor_id)): actor.model_dump(mode="json")
                          for actor_id, actor in PRINCIPALS.items()})


# One actor of each role (the first of PRINCIPALS), for tests that go through the roles.
ONE_OF_EACH_ROLE: dict[Role, Actor] = {role: next(a for a in PRINCIPALS.values() if a.role is role)
                                       for role in Role}


def campaign_play_tokens() -> dict[str, str]:
    """The people of the campaign's play (services/demo/scenario.py) as the actors above: pass
    it as `Endpoints.tokens` to play the campaign against services a test started."""
    return {"admin": token("admin-1"), "inspector": token("insp-1"),
            **{f"reporter-{unit}": token(f"rep-{unit}-1") for unit in UNITS},
            **{f"reviewer-{unit}": token(f"rev-{unit}-1") for unit in UNITS}}
