"""A small look-back campaign driven through the services' HTTP APIs, as the people of DOMAIN.md §1
would drive it, for a system whose services run as separate processes; and what every service's
queries show at its end, with the ids each run invents replaced by names, so that two runs of the
same scenario (one under faults, one without) can be compared as they are.

The registry lists liaisons (three units of five: the others are reminded) and projects, some
not operating (each opens a 台账 item in rectification); units raise problems, rectify, request
销号; reviewers verify or return (one 反弹); monthly lists are submitted; the inspection group
freezes a frame, commits and reveals entropy, visits a drawn project and records a finding that
becomes a city item, which an inspector verifies; then the notifier's simulated clock walks
through March 2024 and the reminders, urging and escalations go out by SMTP.

The notifier runs on a simulated clock (LOOKBACK_NOTIFIER_SIMULATED_CLOCK_START) moved by
`POST /clock`; the other services on the real one. The clock moves only once every fact is
settled, so what is sent does not depend on how fast the facts travelled.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx

from services.system import specs
from tests.support.actors import UNITS, auth
from tests.support.clock import LOCAL
from tests.support.polling import eventually

# The notifier's campaign clock starts at mobilisation and walks to the day after the March
# list was due; each stop is just past a send time (09:00) with reminders due: the liaisons'
# T-1 (03-05) and first overdue day (urging, and the leader told: 03-07), the list's T-3 (03-20),
# its day (03-25) and its first overdue day (03-26).
NOTIFIER_CLOCK_START = datetime(2024, 3, 4, 8, 0, tzinfo=LOCAL)
CLOCK_STOPS = [datetime(2024, 3, d, 9, 0, 1, tzinfo=LOCAL) for d in (5, 7, 20, 25, 26)]
WITH_LIAISONS = ("echeng", "huarong", "liangzihu")     # gedian and linkong are reminded
LIST_SUBMITTED = ("echeng", "huarong")                 # the others are reminded and urged
DRAW_ID = "ezhou-2024-faults-01"
SETTLE = 180.0   # a bound for a hang (a transaction held open stalls every read model meanwhile)

Hook = Callable[[str], Awaitable[None]]


async def _nothing(_: str) -> None:
    return None


def photo(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _short(unit: str) -> str:
    return {"echeng": "鄂城", "huarong": "华容", "liangzihu": "梁子湖", "gedian": "葛店",
            "linkong": "临空"}[unit]


TOWNSHIP = {"echeng": "凤凰街道", "huarong": "华容镇", "liangzihu": "太和镇", "gedian": "葛店镇",
            "linkong": "燕矶镇"}


def project(unit: str, kind: str, *, working: bool) -> dict[str, Any]:
    services = (["meal_assistance", "day_care", "cleaning_assistance"] if working else [])
    return {"project_type": kind, "unit": unit, "township": TOWNSHIP[unit], "village": "示例社区",
            "project_year": 2022, "provincial_key": False,
            "name": f"{TOWNSHIP[unit]}(示例){'运营' if working else '闲置'}"
                    f"{'幸福食堂' if kind == 'canteen' else '社区居家养老服务中心'}",
            "operator": ({"kind": "professional", "name": "(示例)颐康养老服务有限公司",
                          "contract_start": "2023-01-01", "contract_end": "2025-12-31"}
                         if working else {"kind": "none"}),
            "services": services, "claimed_status": "operating" if working else "not_operating"}


class Http:
    """One client per service; every command must succeed (a command is retried only when the
    connection failed before an answer: each command carries its own ids, so a retry is
    recognised, never doubled)."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.clients = {name: httpx.AsyncClient(base_url=url, timeout=60) for name, url in urls.items()}

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def call(self, service: str, method: str, path: str, who: str, *,
                   body: Any = None, params: dict[str, Any] | None = None,
                   ok: tuple[int, ...] = (200, 201)) -> Any:
        async def attempt() -> httpx.Response | None:
            try:
                return await self.clients[service].request(method, path, json=body, params=params,
                                                           headers=auth(who))
            except httpx.TransportError:
                return None   # the service is restarting: try again
        response = await eventually(attempt, timeout=SETTLE, interval=0.5,
                                    what=f"{service} answering {method} {path}")
        assert response.status_code in ok, f"{method} {service}{path}: {response.status_code} " \
                                           f"{response.text[:500]}"
        return response.json() if response.content else None

    async def post(self, service: str, path: str, who: str, body: Any, **kw: Any) -> Any:
        return await self.call(service, "POST", path, who, body=body, **kw)

    async def get(self, service: str, path: str, who: str = "admin-1", **params: Any) -> Any:
        return await self.call(service, "GET", path, who, params=params or None, ok=(200,))


async def settled(dsn: str) -> bool:
    """Everything appended is sequenced, every broker consumer has handled every event it takes,
    and every projection has passed every event of its categories."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT (SELECT count(*) FROM es.events) <> "
                               "(SELECT count(*) FROM es.ledger)"):
            return False
        for spec in specs():
            for consumer in spec.consumers:
                unhandled = await conn.fetchval(
                    """SELECT count(*) FROM es.ledger l JOIN es.events e ON e.event_id = l.event_id
                        WHERE e.category = ANY($2::text[]) AND e.event_type = ANY($3::text[])
                          AND NOT EXISTS (SELECT 1 FROM es.inbox i
                                           WHERE i.consumer = $1 AND i.event_id = e.event_id)""",
                    consumer.name, list(consumer.categories), list(consumer.event_types))
                if unhandled:
                    return False
            for projection in spec.projections:
                behind = await conn.fetchval(
                    """SELECT coalesce(max(l.global_position), 0) >
                              coalesce((SELECT global_position FROM es.positions WHERE name = $1), 0)
                         FROM es.ledger l JOIN es.events e ON e.event_id = l.event_id
                        WHERE e.category = ANY($2::text[])""",
                    f"local:{projection.name}", list(projection.categories))
                if behind:
                    return False
        return True
    finally:
        await conn.close()


class Scenario:
    """The campaign's steps; `hook(phase)` is called between phases (the faults go there)."""

    def __init__(self, urls: dict[str, str], dsn: str, *, hook: Hook = _nothing) -> None:
        self.http, self.dsn, self.hook = Http(urls), dsn, hook
        self.today = datetime.now(LOCAL).date()
        self.took: dict[str, float] = {}

    async def settle(self, what: str) -> None:
        await eventually(lambda: settled(self.dsn), timeout=SETTLE, interval=0.5,
                         what=f"every service settled ({what})")

    async def run(self) -> None:
        """The phases in turn; `self.took` says how long each took (seconds)."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("registered", self.registry), ("rectified", self.rectification),
            ("inspected", self.inspection), ("reminded", self.reminders), ("scored", self.scores)]
        try:
            for phase, step in steps:
                started = time.monotonic()
                await step()
                await self.hook(phase)
                self.took[phase] = round(time.monotonic() - started, 1)
        finally:
            await self.http.close()

    async def scores(self) -> None:
        await self.http.post("rectification", "/scores/check", "admin-1", {})
        await self.settle("the end")

    # ----- the registry ---------------------------------------------------------------------

    async def registry(self) -> None:
        h = self.http
        for unit in WITH_LIAISONS:
            for role, name in (("leader", "王某(示例)"), ("liaison", "李某某(示例)")):
                await h.post("registry", "/liaisons", f"rep-{unit}-1", {
                    "unit": unit, "role": role, "name": f"{_short(unit)}{name}", "gender": "female",
                    "position": "副局长" if role == "leader" else "科长", "mobile": "13800009876"})
        self.projects: dict[str, dict[str, str]] = {}
        for unit in UNITS:
            kinds = [("community_center", False)]
            if unit in ("echeng", "huarong", "liangzihu"):
                kinds.append(("canteen", True))
            for kind, working in kinds:
                body = await h.post("registry", "/projects", f"rep-{unit}-1",
                                    project(unit, kind, working=working))
                self.projects.setdefault(unit, {})["working" if working else "idle"] = body["project_id"]

    # ----- rectification --------------------------------------------------------------------

    async def items(self, unit: str, expected: int) -> list[dict[str, Any]]:
        async def seen() -> list[dict[str, Any]] | None:
            body = await self.http.get("rectification", "/problems", unit=unit)
            return body["items"] if len(body["items"]) >= expected else None
        found: list[dict[str, Any]] = await eventually(seen, timeout=SETTLE, interval=0.2,
                                                       what=f"{expected} items of {unit}")
        return found

    async def ledger_item(self, unit: str) -> str:
        [item] = [i for i in await self.items(unit, 1) if i["source"] == "ledger"]
        return str(item["problem_id"])

    async def close_out(self, unit: str, problem_id: str, *, verifier: str, evidence: str) -> None:
        h = self.http
        await h.post("rectification", "/problems/start", f"rep-{unit}-1",
                     {"problem_id": problem_id, "plan": "引进专业运营机构(示例)"})
        await self.request(unit, problem_id, evidence)
        await h.post("rectification", "/problems/verify", verifier,
                     {"problem_id": problem_id, "conclusion": "经核验已整改到位(示例)"})

    async def request(self, unit: str, problem_id: str, evidence: str) -> None:
        await self.http.post("rectification", "/problems/request-close-out", f"rep-{unit}-1", {
            "problem_id": problem_id, "evidence_text": "运营合同与服务记录(示例)",
            "attachment_hashes": [photo(evidence)]})

    async def rectification(self) -> None:
        h = self.http
        deadline = (self.today + timedelta(days=20)).isoformat()
        # 鄂城: its 台账 item closed; a self-found item closed too.
        await self.close_out("echeng", await self.ledger_item("echeng"), verifier="rev-echeng-1",
                             evidence="echeng-ledger")
        own = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.dsn}/echeng-own"))
        await h.post("rectification", "/problems/register", "rep-echeng-1", {
            "problem_id": own, "project_id": self.projects["echeng"]["working"],
            "description": "助餐服务记录不全(示例)", "deadline": deadline,
            "responsible_person": "(示例)责任人"})
        await self.close_out("echeng", own, verifier="rev-echeng-1", evidence="echeng-own")
        # 华容: 销号 requested and returned (退回), still open.
        huarong = await self.ledger_item("huarong")
        await h.post("rectification", "/problems/start", "rep-huarong-1",
                     {"problem_id": huarong, "plan": "引进专业运营机构(示例)"})
        await self.request("huarong", huarong, "huarong-ledger")
        await h.post("rectification", "/problems/return", "rev-huarong-1",
                     {"problem_id": huarong, "reason": "证据不足，缺少服务记录(示例)"})
        # 梁子湖: closed, then found again (反弹): a new item linked to it.
        liangzihu = await self.ledger_item("liangzihu")
        await self.close_out("liangzihu", liangzihu, verifier="rev-liangzihu-1",
                             evidence="liangzihu-ledger")
        await h.post("rectification", "/problems/reopen", "admin-1", {
            "problem_id": liangzihu, "reason": "回访发现仍未开展助餐(示例)",
            "new_problem_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.dsn}/liangzihu-again"))})
        # 葛店 and 临空 leave their 台账 items open.
        for unit in ("gedian", "linkong"):
            await self.ledger_item(unit)
        for unit in LIST_SUBMITTED:
            await h.post("rectification", "/reports/monthly-list/submit", f"rep-{unit}-1",
                         {"unit": unit, "month": "2024-03"})

    # ----- inspection -----------------------------------------------------------------------

    async def inspection(self) -> None:
        h = self.http
        count = sum(len(kinds) for kinds in self.projects.values())

        async def frame_ready() -> bool:
            return len(await h.get("inspection", "/registry-view/projects", "insp-1")) >= count
        await eventually(frame_ready, timeout=SETTLE, interval=0.2, what="inspection's view")
        await h.post("inspection", "/draws", "insp-1",
                     {"draw_id": DRAW_ID, "title": "2024年回头看市级抽查(示例)"})
        await h.post("inspection", f"/draws/{DRAW_ID}/entropy-commitment", "insp-1", {
            "draw_id": DRAW_ID, "statement": "专班会议现场抽取的6位数字(示例)"})
        await h.post("inspection", f"/draws/{DRAW_ID}/entropy-reveal", "insp-1",
                     {"draw_id": DRAW_ID, "entropy": "318062"})
        # Every unit's one canteen is drawn (⌈1/2⌉ = 1): 鄂城's is visited and has a finding.
        target = self.projects["echeng"]["working"]
        await h.post("inspection", f"/draws/{DRAW_ID}/visits", "insp-1", {
            "draw_id": DRAW_ID, "visit_id": "visit-echeng-1", "target_kind": "project",
            "target_id": target, "scheduled_for": "2024-03-27", "inspector_ids": ["insp-1", "insp-2"]})
        await h.post("inspection", f"/draws/{DRAW_ID}/visits/visit-echeng-1/record", "insp-1", {
            "draw_id": DRAW_ID, "visit_id": "visit-echeng-1", "outcome": "problems_found",
            "visited_on": "2024-03-27", "inspector_ids": ["insp-1", "insp-2"],
            "notes": "现场检查(示例)", "checklist": {
                "services_three_plus": "yes", "meal_assistance": "yes", "operator_in_place": "yes",
                "safety_facilities": "no", "service_records": "yes"},
            "findings": [{"text": "消防通道堆放杂物(示例)",
                          "deadline": (self.today + timedelta(days=10)).isoformat()}]})
        # The finding became a city item in rectification: the unit rectifies, an inspector verifies.
        async def city_item() -> str | None:
            body = await h.get("rectification", "/problems", unit="echeng", source="city")
            return str(body["items"][0]["problem_id"]) if body["items"] else None
        found = await eventually(city_item, timeout=SETTLE, interval=0.2, what="the city item")
        await self.close_out("echeng", found, verifier="insp-2", evidence="echeng-city")

    # ----- the notifier ---------------------------------------------------------------------

    async def reminders(self) -> None:
        started = time.monotonic()
        await self.settle("before the clock moves")
        self.took["settled"] = round(time.monotonic() - started, 1)
        for stop in CLOCK_STOPS:
            started = time.monotonic()
            await self.move_notifier_clock(stop)
            self.took[stop.strftime("%m-%d")] = round(time.monotonic() - started, 1)

    async def move_notifier_clock(self, to: datetime) -> None:
        """Move the notifier's clock to `to` (unless it is there already), then wait until it has
        sent what is due and recorded it."""
        now = datetime.fromisoformat((await self.http.get("notifier", "/clock"))["now"])
        if now < to:
            await self.http.post("notifier", "/clock", "admin-1", {"now": to.isoformat()})

        async def idle() -> bool:
            counts = (await self.http.get("notifier", "/calendar"))["reminder_counts"]
            return not counts.get("due") and not counts.get("claimed")
        # Polled gently: the calendar plans every obligation's reminders on each read.
        await eventually(idle, timeout=SETTLE, interval=0.5, what=f"the reminders of {to}")
        await self.settle(f"the reminders of {to}")


# ----- the end state ---------------------------------------------------------------------------


async def final_state(urls: dict[str, str]) -> dict[str, Any]:
    """What every service's queries show, as a person reads it: names, states, counts, scores;
    not the ids and instants a run invents."""
    http = Http(urls)
    try:
        projects = (await http.get("registry", "/projects"))["items"]
        names = {p["project_id"]: p["name"] for p in projects}
        ledger = (await http.get("registry", "/ledger", include_cleared="true"))["items"]
        liaisons = await http.get("registry", "/liaisons")
        problems = (await http.get("rectification", "/problems"))["items"]
        board = await http.get("rectification", "/scores/board")
        reports = await http.get("rectification", "/reports")
        draws = await http.get("inspection", "/draws")
        picks = await http.get("inspection", f"/draws/{DRAW_ID}/picks")
        visits = await http.get("inspection", f"/draws/{DRAW_ID}/visits")
        findings = await http.get("inspection", f"/draws/{DRAW_ID}/findings")
        reminders = await http.get("notifier", "/reminders")
        return {
            "registry.projects": sorted((p["unit"], p["name"], p["status"], p["on_ledger"],
                                         p["ledger_state"]) for p in projects),
            "registry.ledger": sorted((names[e["project_id"]], e["state"], e["open"]) for e in ledger),
            "registry.liaisons": _liaisons(liaisons),
            "rectification.problems": sorted(
                (i["unit"], i["seq_no"], i["source"], i["status"], i["project_name"], i["description"],
                 i["overdue"]) for i in problems),
            "rectification.board": _plain(board),
            "rectification.reports": _reports(reports),
            "inspection.draws": sorted((d["draw_id"], d["stage"], d["entropy"], tuple(d["units"]))
                                       for d in _items(draws)),
            "inspection.picks": sorted((p["stratum"], p["selection"], p["sequence_no"], p["name"],
                                        p["in_sample"]) for unit in picks["units"]
                                       for p in unit["picks"]),
            "inspection.visits": sorted((names.get(v["target_id"], v["target_id"]), v["outcome"])
                                        for v in _items(visits)),
            "inspection.findings": sorted(f["text"] for f in _items(findings)),
            "notifier.reminders": _reminders(reminders),
        }
    finally:
        await http.close()


def _items(body: Any) -> list[dict[str, Any]]:
    return body["items"] if isinstance(body, dict) and "items" in body else body


_VOLATILE = {"project_id", "problem_id", "report_id", "event_id", "at", "updated_at", "as_of",
             "generated_at", "computed_at", "now"}


def _plain(body: Any) -> Any:
    """A query's answer without the keys a run invents (ids, instants)."""
    if isinstance(body, dict):
        return {k: _plain(v) for k, v in sorted(body.items())
                if k not in _VOLATILE and not k.endswith("_at") and not k.endswith("_id")}
    if isinstance(body, list):
        return [_plain(v) for v in body]
    return body


def _liaisons(body: Any) -> list[tuple[str, str]]:
    return sorted((row["unit"], row["role"]) for row in _items(body))


def _reports(body: Any) -> list[tuple[Any, ...]]:
    return sorted((r["unit"], r["kind"], r["period"], r["status"], r["version"], r["late"],
                   len(r["rows"])) for r in body["reports"])


def _reminders(body: Any) -> list[tuple[Any, ...]]:
    """Every reminder the notifier recorded: whom, about what, when (on its simulated clock),
    and how it ended."""
    return sorted((r["unit"], r["obligation_id"], r["kind"], r["audience"], r["scheduled_for"],
                   r["status"], r["channel"], r["outcome"], r["attempt"]) for r in _items(body))

