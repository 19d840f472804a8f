"""The Ezhou 2024 look-back campaign as its people would work it, through the services' HTTP APIs.

Given the four services' base URLs and a bearer token per person (`Endpoints`), `play` moves
every service's clock (`POST /clock`, city_admin: the services run on a simulated or campaign
clock, docs/adr/0018) day by day from 2024-03-05 to 2024-06-01 and, on each day, does what the
people of the notice do that day (../shared/DOMAIN.md §1):

- 动员部署: the units' 填报人 register their responsible leader and liaison (附件1) and file their
  work plans; 临空经济区 registers its liaisons two days late.
- 自查自改: the 台账 opens items by itself (the sample registry's not-operating projects); every
  unit raises problems of its own, rectifies, requests 销号 with evidence, and its 审核人 verifies
  (鄂城区's first request is returned once); monthly lists are filed and exported (华容区's March
  list two days late); the city finds one closed item of 梁子湖区 again (反弹); 葛店经开区 leaves its
  台账 items open past 05-07.
- 总结提高: the inspection group freezes the sampling frame, commits to the entropy before it
  exists, reveals it and draws, announces and makes visits, and records findings that become
  items in rectification (华容区's is still open at its deadline); units file typical cases
  (葛店经开区 never does).
- The board is read as final after 05-31.

Every morning at 09:00 the notifier sends what is due that day (reminders, 催办, 督办, visit
notices); the player waits until nothing is due before the day's work, so each reminder goes out
on its own day. Nothing here reaches into a database: the same play drives one process
(`lookback demo`) or one process per service under faults (tests/e2e).

Against separate processes: start each service with `LOOKBACK_CLOCK=simulated:<START>` (the
play moves each one's clock), load the sample with `lookback seed --no-liaisons` (the play files
附件1), and give `Endpoints` the four URLs and tokens for the ids above
(tests/support/actors.campaign_play_tokens() maps them to the test actors). The outcome is fixed
by the plot: on 06-01 the board reads echeng 100, huarong 99, liangzihu 99, gedian 97.5,
linkong 99 (tests/e2e/test_demo.py says which rule took what).
"""
from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import httpx

from services.inspection.domain.checklists import checklist_of

CAMPAIGN_TZ = timezone(timedelta(hours=8))
UNITS = ("echeng", "huarong", "liangzihu", "gedian", "linkong")
DRAW_ID = "ezhou-2024-city-inspection"

# Who does what differently (the scenario's plot; the expected outcome follows from it).
LATE_LIAISONS = "linkong"         # 附件1 two days after the 03-06 deadline
LATE_MARCH_LIST = "huarong"       # the March list two days after 03-25
RETURNED_ONCE = "echeng"          # its first 销号 request is returned for better evidence
REBOUND = "liangzihu"             # one of its closed items is found again (反弹)
LEDGER_LEFT_OPEN = "gedian"       # its 台账 items are still open on 05-07
NO_TYPICAL_CASE = "gedian"        # never files a typical case
FINDINGS_AT = ("echeng", "huarong")   # inspection visits that find problems
FINDING_LEFT_OPEN = "huarong"     # its city-found item is still open at the end


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment of 2024 in the campaign's time zone."""
    return datetime(2024, month, day, hour, minute, tzinfo=CAMPAIGN_TZ)


START = at(3, 5, 10, 30)              # the sample registry was loaded at 10:00 (registry/seed.py)
FINAL = at(6, 1, 0, 30)               # the day after the campaign: the board is final
MORNING = (9, 0, 30)                  # just after the reminders' send time (09:00)
PHASES = (("动员部署", date(2024, 3, 5), date(2024, 3, 6)),
          ("自查自改", date(2024, 3, 7), date(2024, 5, 7)),
          ("总结提高", date(2024, 5, 8), date(2024, 5, 31)),
          ("结果", date(2024, 6, 1), date(2024, 6, 1)))


class ScenarioError(RuntimeError):
    """A service refused what a person did, or never showed what the play waited for."""


@dataclass(frozen=True)
class Endpoints:
    """Where the services answer and each person's bearer token, by the ids `lookback up` gives
    them (`var/demo-tokens.txt`): admin, inspector, reporter-<unit>, reviewer-<unit>."""

    registry: str
    rectification: str
    inspection: str
    notifier: str
    tokens: Mapping[str, str]

    @property
    def services(self) -> tuple[str, ...]:
        return (self.registry, self.rectification, self.inspection, self.notifier)


def read_demo_tokens(path: Path) -> dict[str, str]:
    """The tokens file `lookback up` / `lookback demo` write: id, role, unit, token per line."""
    tokens = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            principal, _role, _unit, token = line.split("\t")[:4]
            tokens[principal] = token
    return tokens


class Progress(Protocol):
    def phase(self, name: str, days: int) -> None:
        """A phase begins; it has `days` campaign days."""

    def day(self, moment: datetime, doing: str) -> None:
        """One campaign day is done (`doing`: what happened, in Chinese)."""


class _Quiet:
    def phase(self, name: str, days: int) -> None:
        pass

    def day(self, moment: datetime, doing: str) -> None:
        pass


@dataclass
class Played:
    """What the play produced: the files it saved and what it read at the end."""

    monthly_lists: list[Path] = field(default_factory=list)
    draw_lists: list[Path] = field(default_factory=list)
    calendars: list[Path] = field(default_factory=list)
    board: dict[str, Any] = field(default_factory=dict)
    calendar: dict[str, Any] = field(default_factory=dict)
    reminders_sent: int = 0
    reached: datetime | None = None
    days: int = 0
    seconds: dict[str, float] = field(default_factory=dict)   # real time spent, by kind of work


Action = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    when: datetime
    title: str
    action: Action


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _id(*parts: str) -> str:
    """Stable ids: the same play makes the same items (a retried command is recognised)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "lookback-demo:" + "/".join(parts)))


class CampaignPlay:
    """The people and the days; `play` runs them in order."""

    def __init__(self, endpoints: Endpoints, client: httpx.AsyncClient, *,
                 out_dir: Path | None = None, progress: Progress | None = None,
                 settle_timeout: float = 30.0, propagation_timeout: float = 90.0) -> None:
        self.ep = endpoints
        self.client = client
        self.out_dir = out_dir
        self.progress = progress or _Quiet()
        self.settle_timeout = settle_timeout
        self.propagation_timeout = propagation_timeout
        self.played = Played()
        self._after: dict[str, str] = {}      # per service: the last write's consistency token
        self._items: dict[str, dict[str, list[str]]] = {u: {} for u in UNITS}
        self._now = START
        self._changed = True                  # something happened since the calendar was read
        self._next_reminder: datetime | None = None

    # ----- HTTP ----------------------------------------------------------------------------------

    async def call(self, method: str, base: str, path: str, who: str, *,
                   json: Any = None, params: Mapping[str, Any] | None = None,
                   ok: Iterable[int] = (200, 201), after: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.ep.tokens[who]}"}
        if after is not None:
            headers["X-Lookback-After"] = after
        elif method == "GET" and base in self._after:
            headers["X-Lookback-After"] = self._after[base]
        for attempt in range(20):
            try:
                response = await self.client.request(method, base + path, json=json,
                                                     params=params, headers=headers)
            except httpx.TransportError as exc:   # a service restarting (the fault test)
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in set(ok):
                    if token := response.headers.get("X-Lookback-Token"):
                        self._after[base] = token
                    return response
                if response.status_code not in (502, 503, 504):
                    raise ScenarioError(f"{method} {path} as {who} at {self._now.isoformat()}: "
                                        f"{response.status_code} {response.text[:800]}")
                reason = f"{response.status_code} {response.text[:200]}"
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        raise ScenarioError(f"{method} {path} as {who}: unavailable ({reason})")

    async def get(self, base: str, path: str, who: str = "admin", **params: Any) -> Any:
        return (await self.call("GET", base, path, who, params=params or None)).json()

    async def post(self, base: str, path: str, who: str, body: Any,
                   ok: Iterable[int] = (200, 201)) -> Any:
        return (await self.call("POST", base, path, who, json=body, ok=ok)).json()

    async def until(self, what: str, probe: Callable[[], Awaitable[bool]]) -> None:
        """Wait for another service to show what an event caused (events flow asynchronously)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.propagation_timeout
        while not await probe():
            if loop.time() > deadline:
                raise ScenarioError(f"never saw {what} within {self.propagation_timeout:.0f} s")
            await asyncio.sleep(0.1)

    # ----- the clock -------------------------------------------------------------------------------

    async def _timed(self, kind: str, work: Awaitable[None]) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await work
        finally:
            spent = self.played.seconds
            spent[kind] = round(spent.get(kind, 0.0) + loop.time() - began, 3)

    async def move_to(self, moment: datetime) -> None:
        """Every service's clock to `moment` (in one process they share one clock: a second move
        to the same moment of a running campaign clock is a moment late, and refused; fine)."""
        if moment < self._now:
            raise ScenarioError(f"the play went back in time: {moment} < {self._now}")
        self._now = moment
        for base in self.ep.services:
            response = await self.call("POST", base, "/clock", "admin",
                                       json={"now": moment.isoformat()}, ok=(200, 409))
            if response.status_code == 409 and response.json().get("error") != "clock_backwards":
                raise ScenarioError(f"moving the clock of {base}: {response.text[:300]}")

    async def notifier_caught_up(self) -> None:
        """Wait until the notifier has taken in what the day's work recorded (read-your-writes
        across services, ADR 0013), before the clock moves on: an obligation it learnt of only
        after its first reminder's moment would skip that reminder, and the play would depend on
        how busy the machine was."""
        for base, token in list(self._after.items()):
            if base != self.ep.notifier:
                await self.call("GET", self.ep.notifier, "/calendar", "admin",
                                params={"unit": UNITS[0]}, after=token)

    async def settle_reminders(self) -> None:
        """Wait until the notifier has sent everything due now (on its own day, or never), and
        note when the next reminder is planned: until then, and while nobody does anything, the
        mornings need no look at the calendar (reading it is the play's slowest request)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        while True:
            calendar = await self.get(self.ep.notifier, "/calendar")
            counts = calendar["reminder_counts"]
            if not counts.get("due") and not counts.get("claimed"):
                planned = [datetime.fromisoformat(r["at"]) for o in calendar["obligations"]
                           for r in o["reminders"] if r["status"] == "scheduled"]
                self._next_reminder = min(planned, default=None)
                self._changed = False
                return
            if loop.time() > deadline:
                raise ScenarioError(f"reminders still unsent at {self._now.isoformat()}: {counts}")
            await asyncio.sleep(0.1)

    # ----- the play ------------------------------------------------------------------------------

    async def play(self, *, until: datetime | None = None) -> Played:
        """Every day from START to FINAL (or to `until`, where the clock is left)."""
        steps = sorted(self.timeline(), key=lambda s: s.when)
        end = min(until, FINAL) if until is not None else FINAL
        await self.move_to(START)
        await self.until("the sample registry in rectification, with its 台账 items",
                         self._ledger_items_opened)
        for name, first, last in PHASES:
            if first > end.astimezone(CAMPAIGN_TZ).date():
                break
            self.progress.phase(name, (last - first).days + 1)
            day = first
            while day <= last:
                morning = datetime(day.year, day.month, day.day, *MORNING, tzinfo=CAMPAIGN_TZ)
                if morning > end:
                    break
                if morning > self._now:
                    await self._timed("clock", self.move_to(morning))
                if self._changed or (self._next_reminder is not None
                                     and self._next_reminder <= morning):
                    await self._timed("reminders", self.settle_reminders())
                done = []
                for step in [s for s in steps if s.when.date() == day and s.when <= end]:
                    if step.when > self._now:
                        await self._timed("clock", self.move_to(step.when))
                    await self._timed("work", step.action())
                    self._changed = True
                    done.append(step.title)
                if done:
                    await self._timed("sync", self.notifier_caught_up())
                self.played.days += 1
                self.progress.day(morning, "；".join(done))
                day += timedelta(days=1)
        if end > self._now:
            await self.move_to(end)
        await self.settle_reminders()
        self.played.reached = end
        await self._read_results()
        return self.played

    def timeline(self) -> list[Step]:
        s = Step
        plan = [
            s(at(3, 5, 14), "各单位上报责任领导和联络员(附件1)", self.liaisons_on_time),
            s(at(3, 5, 16), "各单位报送工作计划", self.work_plans),
            s(at(3, 6, 10), "审核人审核工作计划", self.review_work_plans),
            s(at(3, 8, 10), "临空经济区迟报附件1", self.late_liaisons),
            s(at(3, 12), "各单位自查登记问题", self.raise_problems),
            s(at(3, 14), "开始整改", self.start_rectification),
            s(at(3, 18), "立行立改问题申请销号", lambda: self.request_close_out("immediate")),
            s(at(3, 19), "审核人核验销号(鄂城区退回一项)", lambda: self.verify("immediate",
                                                                     return_in=RETURNED_ONCE)),
            s(at(3, 20), "鄂城区补充佐证后重新申请销号", self.resubmit_returned),
            s(at(3, 21), "审核人核验补充后的销号申请", lambda: self.verify("immediate")),
            s(at(3, 25, 15), "报送3月问题整改清单", lambda: self.monthly_lists(
                "2024-03", [u for u in UNITS if u != LATE_MARCH_LIST])),
            s(at(3, 27), "华容区迟报3月清单", lambda: self.monthly_lists("2024-03", [LATE_MARCH_LIST])),
            s(at(4, 10), "限期问题与台账问题申请销号", lambda: self.request_close_out(
                "dated", "ledger", skip_ledger_of=LEDGER_LEFT_OPEN)),
            s(at(4, 12), "审核人核验销号", lambda: self.verify("dated", "ledger")),
            s(at(4, 22), "市检查组发现梁子湖区已销号问题反弹", self.rebound),
            s(at(4, 24), "反弹问题整改", lambda: self.start_and_request("rebound")),
            s(at(4, 25, 15), "报送4月问题整改清单", lambda: self.monthly_lists("2024-04", UNITS)),
            s(at(4, 26), "检查组核验反弹问题销号", lambda: self.verify("rebound")),
            s(at(5, 7, 15), "报送自查报告", self.self_inspection_reports),
            s(at(5, 8, 9, 30), "冻结抽样框，承诺随机源", self.freeze_and_commit),
            s(at(5, 8, 22), "公布随机源并抽取抽查名单", self.reveal_and_draw),
            s(at(5, 13), "安排实地检查", self.schedule_visits),
            s(at(5, 15, 16), "实地检查，记录发现的问题", self.record_visits),
            s(at(5, 17), "检查发现问题开始整改", lambda: self.start_and_request(
                "finding", skip=FINDING_LEFT_OPEN)),
            s(at(5, 22), "检查组核验检查发现问题", lambda: self.verify("finding")),
            s(at(5, 28), "报送典型案例", self.typical_cases),
        ]
        return plan

    # ----- 动员部署 -------------------------------------------------------------------------------

    async def _register_liaisons(self, unit: str) -> None:
        index = UNITS.index(unit)
        for role, name, gender, position in (
                ("leader", f"{'赵钱孙李周'[index]}某(示例)", "male", "副局长"),
                ("liaison", f"{'吴郑王冯陈'[index]}某某(示例)", "female", "养老服务科科长")):
            await self.post(self.ep.registry, "/liaisons", f"reporter-{unit}", {
                "unit": unit, "role": role, "name": name, "gender": gender, "position": position,
                "mobile": f"1390000{10 * index + (role == 'leader'):04d}"})

    async def liaisons_on_time(self) -> None:
        for unit in UNITS:
            if unit != LATE_LIAISONS:
                await self._register_liaisons(unit)

    async def late_liaisons(self) -> None:
        await self._register_liaisons(LATE_LIAISONS)

    async def work_plans(self) -> None:
        for unit in UNITS:
            await self.post(self.ep.rectification, "/reports/work-plan/submit", f"reporter-{unit}",
                            {"unit": unit, "text": "(示例)“回头看”工作计划：成立专班，三月底前完成全面自查，"
                                                   "五月七日前整改到位。"})

    async def review_work_plans(self) -> None:
        for unit in UNITS:
            await self.post(self.ep.rectification, "/reports/review", f"reviewer-{unit}",
                            {"report_id": f"{unit}-work_plan", "approved": True, "comment": "同意"})

    # ----- 自查自改 -------------------------------------------------------------------------------

    async def _ledger_items_opened(self) -> bool:
        projects = (await self.get(self.ep.rectification, "/projects"))["projects"]
        listed = sum(1 for p in projects if p["on_ledger"])
        items = await self.get(self.ep.rectification, "/problems", source="ledger", limit=1000)
        return bool(projects) and {p["unit"] for p in projects} >= set(UNITS) \
            and listed > 0 and items["total"] >= listed

    async def _list_items(self, unit: str, **filters: Any) -> list[dict[str, Any]]:
        body = await self.get(self.ep.rectification, "/problems", unit=unit, limit=1000, **filters)
        items: list[dict[str, Any]] = body["items"]
        return items

    async def raise_problems(self) -> None:
        """Each unit registers two problems of its own on projects not on the 台账: one 立行立改,
        one with a date; the 台账 items the registry opened are collected too."""
        for unit in UNITS:
            projects = [p for p in (await self.get(self.ep.rectification, "/projects",
                                                   unit=unit))["projects"] if not p["on_ledger"]]
            if len(projects) < 2:
                raise ScenarioError(f"{unit} has fewer than two projects off the 台账")
            for kind, project, body in (
                    ("immediate", projects[0], {"deadline_kind": "immediate",
                                                "description": "(示例)消防器材过期未更换"}),
                    ("dated", projects[1], {"deadline_kind": "date", "deadline": "2024-04-30",
                                            "description": "(示例)助餐服务台账记录不全，未按月公示"})):
                problem_id = _id(unit, kind)
                await self.post(self.ep.rectification, "/problems/register", f"reporter-{unit}", {
                    "problem_id": problem_id, "project_id": project["project_id"],
                    "responsible_person": "(示例)项目负责人", **body})
                self._items[unit].setdefault(kind, []).append(problem_id)
            self._items[unit]["ledger"] = [item["problem_id"] for item in
                                           await self._list_items(unit, source="ledger")]

    async def start_rectification(self) -> None:
        for unit in UNITS:
            for kind in ("immediate", "dated", "ledger"):
                for problem_id in self._items[unit].get(kind, []):
                    await self.post(self.ep.rectification, "/problems/start", f"reporter-{unit}", {
                        "problem_id": problem_id, "plan": "(示例)明确责任人，限期整改，整改后拍照留存。"})

    async def _request(self, unit: str, problem_id: str, evidence: str) -> None:
        await self.post(self.ep.rectification, "/problems/request-close-out", f"reporter-{unit}", {
            "problem_id": problem_id, "evidence_text": f"(示例){evidence}",
            "attachment_hashes": [_digest(f"{problem_id}:{evidence}")]})

    async def request_close_out(self, *kinds: str, skip_ledger_of: str | None = None) -> None:
        for unit in UNITS:
            for kind in kinds:
                if kind == "ledger" and unit == skip_ledger_of:
                    continue
                for problem_id in self._items[unit].get(kind, []):
                    await self._request(unit, problem_id, "已整改到位，附整改前后照片。")

    async def resubmit_returned(self) -> None:
        for problem_id in self._items[RETURNED_ONCE]["immediate"]:
            await self._request(RETURNED_ONCE, problem_id, "补充更换后的消防器材照片及采购凭证。")

    async def verify(self, *kinds: str, return_in: str | None = None) -> None:
        """The unit's 审核人 (self-found and 台账 items) or the inspection group (city-found)
        verifies each requested item; in `return_in` the first one is returned instead."""
        for unit in UNITS:
            for kind in kinds:
                for problem_id in self._items[unit].get(kind, []):
                    item = await self.get(self.ep.rectification, f"/problems/{problem_id}")
                    if item["status"] != "close_out_requested":
                        continue
                    who = "inspector" if item["source"] == "city" else f"reviewer-{unit}"
                    if unit == return_in and kind == kinds[0]:
                        await self.post(self.ep.rectification, "/problems/return", who, {
                            "problem_id": problem_id, "reason": "照片不清晰，无法确认已整改。"})
                        return_in = None
                        continue
                    await self.post(self.ep.rectification, "/problems/verify", who, {
                        "problem_id": problem_id, "conclusion": "经现场核实，已整改到位，同意销号。"})

    async def monthly_lists(self, month: str, units: Iterable[str]) -> None:
        for unit in units:
            report = await self.post(self.ep.rectification, "/reports/monthly-list/submit",
                                     f"reporter-{unit}", {"unit": unit, "month": month})
            if self.out_dir is not None:
                content = (await self.call("GET", self.ep.rectification,
                                           f"/reports/{report['report_id']}/xlsx", "admin")).content
                path = self.out_dir / "monthly-lists" / f"{report['report_id']}.xlsx"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                self.played.monthly_lists.append(path)

    async def rebound(self) -> None:
        [closed, *_] = self._items[REBOUND]["immediate"]
        new_id = _id(REBOUND, "rebound")
        await self.post(self.ep.rectification, "/problems/reopen", "inspector", {
            "problem_id": closed, "new_problem_id": new_id,
            "reason": "(示例)市级暗访发现消防器材再次过期，问题反弹。"}, ok=(200, 201))
        self._items[REBOUND]["rebound"] = [new_id]

    async def start_and_request(self, kind: str, skip: str | None = None) -> None:
        for unit in UNITS:
            for problem_id in self._items[unit].get(kind, []):
                await self.post(self.ep.rectification, "/problems/start", f"reporter-{unit}", {
                    "problem_id": problem_id, "plan": "(示例)立即整改，专人盯办。"})
                if unit != skip:
                    await self._request(unit, problem_id, "问题已整改，附现场照片。")

    async def self_inspection_reports(self) -> None:
        for unit in UNITS:
            await self.post(self.ep.rectification, "/reports/self-inspection/submit",
                            f"reporter-{unit}", {"unit": unit, "text": "(示例)自查报告：已完成全面自查，"
                                                                        "问题整改情况见问题清单。"})

    # ----- 总结提高 -------------------------------------------------------------------------------

    async def freeze_and_commit(self) -> None:
        await self.post(self.ep.inspection, "/draws", "inspector",
                        {"draw_id": DRAW_ID, "title": "2024年“回头看”市级抽查(示例)"})
        await self.post(self.ep.inspection, f"/draws/{DRAW_ID}/entropy-commitment", "inspector", {
            "draw_id": DRAW_ID, "statement": "中国福利彩票3D 2024-05-08 开奖号码(示例)",
            "not_before": at(5, 8, 21, 30).isoformat()})

    async def reveal_and_draw(self) -> None:
        await self.post(self.ep.inspection, f"/draws/{DRAW_ID}/entropy-reveal", "inspector",
                        {"draw_id": DRAW_ID, "entropy": "福彩3D 2024-05-08: 3 7 1 (示例)"})
        if self.out_dir is not None:
            path = self.out_dir / f"抽查名单-{DRAW_ID}.xlsx"
            path.write_bytes((await self.call("GET", self.ep.inspection,
                                              f"/draws/{DRAW_ID}/list.xlsx", "inspector")).content)
            self.played.draw_lists.append(path)

    async def _first_project_picks(self) -> dict[str, dict[str, Any]]:
        picks = await self.get(self.ep.inspection, f"/draws/{DRAW_ID}/picks", "inspector")
        chosen = {}
        for entry in picks["units"]:
            projects = [p for p in entry["picks"] if p["target_kind"] == "project" and p["in_sample"]]
            if projects:
                chosen[entry["unit"]] = projects[0]
        return chosen

    async def schedule_visits(self) -> None:
        for unit, pick in (await self._first_project_picks()).items():
            await self.post(self.ep.inspection, f"/draws/{DRAW_ID}/visits", "inspector", {
                "draw_id": DRAW_ID, "visit_id": f"visit-{unit}", "target_kind": "project",
                "target_id": pick["target_id"], "scheduled_for": "2024-05-15",
                "inspector_ids": ["inspector"]})

    async def record_visits(self) -> None:
        for unit, pick in (await self._first_project_picks()).items():
            found = unit in FINDINGS_AT
            checklist = {key: "no" if found and n == 0 else "yes"
                         for n, key in enumerate(checklist_of(pick["project_type"]))}
            await self.post(self.ep.inspection, f"/draws/{DRAW_ID}/visits/visit-{unit}/record",
                            "inspector", {
                                "draw_id": DRAW_ID, "visit_id": f"visit-{unit}",
                                "outcome": "problems_found" if found else "passed",
                                "visited_on": "2024-05-15", "inspector_ids": ["inspector"],
                                "checklist": checklist, "notes": "(示例)现场检查",
                                "findings": [{"text": "(示例)服务记录与实际不符，部分时段未开展助餐服务",
                                              "deadline": "2024-05-24"}] if found else []})
        for unit in FINDINGS_AT:
            async def opened(unit: str = unit) -> bool:
                items = await self._list_items(unit, source="city")
                found = [i["problem_id"] for i in items if i["reopened_from"] is None]
                self._items[unit]["finding"] = found
                return bool(found)
            await self.until(f"the finding at {unit} as an item in rectification", opened)

    async def typical_cases(self) -> None:
        for unit in UNITS:
            if unit == NO_TYPICAL_CASE:
                continue
            await self.post(self.ep.rectification, "/reports/typical-case/submit", f"reporter-{unit}", {
                "unit": unit, "case_id": _id(unit, "typical-case"),
                "title": "(示例)盘活闲置设施，恢复助餐服务",
                "text": "(示例)引入村委会运营，恢复每日午餐供应，建立服务台账。"})

    # ----- the results ---------------------------------------------------------------------------

    async def _settled_board(self, quiet: float = 1.0) -> dict[str, Any]:
        """The board once the scores read model has stopped changing. The service's own
        scorekeeper may have recorded a deduction a moment before our check did (then our check
        records nothing and its answer carries no token to wait for), so the read model is
        awaited by watching it settle: two reads `quiet` seconds apart that agree."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.propagation_timeout
        board = await self.get(self.ep.rectification, "/scores/board")
        while True:
            await asyncio.sleep(quiet)
            again = await self.get(self.ep.rectification, "/scores/board")
            if again["board"] == board["board"]:
                return dict(again)
            if loop.time() > deadline:
                raise ScenarioError("the score board never settled")
            board = again

    async def _read_results(self) -> None:
        await self.post(self.ep.rectification, "/scores/check", "admin", {})
        self.played.board = await self._settled_board()
        self.played.calendar = await self.get(self.ep.notifier, "/calendar")
        self.played.reminders_sent = (await self.get(self.ep.notifier, "/reminders",
                                                     status="sent", limit=1))["total"]
        if self.out_dir is not None:
            folder = self.out_dir / "calendars"
            folder.mkdir(parents=True, exist_ok=True)
            for unit in UNITS:
                path = folder / f"lookback-{unit}.ics"
                path.write_bytes((await self.call("GET", self.ep.notifier,
                                                  f"/calendar/{unit}.ics", "admin")).content)
                self.played.calendars.append(path)


async def play(endpoints: Endpoints, *, until: datetime | None = None, out_dir: Path | None = None,
               progress: Progress | None = None, timeout: float = 30.0) -> Played:
    """Play the campaign against running services (see the module's docstring)."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await CampaignPlay(endpoints, client, out_dir=out_dir,
                                  progress=progress).play(until=until)


