"""Actors, projects, the campaign's rules (from the packaged Ezhou 2024 campaign file) and a tiny
in-memory "desk" that drives the pure domain like a handler would."""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification.config import rectification_config
from shared.campaign import load_campaign
from shared.messages import Actor, Event, Role

CST = timezone(timedelta(hours=8))
CAMPAIGN = load_campaign()          # the packaged Ezhou 2024 file: the only source of its rules
CONFIG = rectification_config(CAMPAIGN)
RULES = CONFIG.rules
UNITS = ("echeng", "huarong", "liangzihu", "gedian", "linkong")


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0, second: int = 0) -> datetime:
    """A local (Asia/Shanghai) instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=CST)


def reporter(unit: str, n: int = 1) -> Actor:
    return Actor(id=f"rep-{unit}-{n}", name=f"填报人{n}(示例)", role=Role.DISTRICT_REPORTER, unit=unit)


def reviewer(unit: str, n: int = 1) -> Actor:
    return Actor(id=f"rev-{unit}-{n}", name=f"审核人{n}(示例)", role=Role.DISTRICT_REVIEWER, unit=unit)


def inspector(n: int = 1) -> Actor:
    return Actor(id=f"insp-{n}", name=f"检查员{n}(示例)", role=Role.INSPECTOR)


def city_admin(n: int = 1) -> Actor:
    return Actor(id=f"admin-{n}", name=f"市局管理员{n}(示例)", role=Role.CITY_ADMIN)


LEADER = Actor(id="leader-1", name="领导(示例)", role=Role.LEADER)
AUDITOR = Actor(id="auditor-1", name="审计(示例)", role=Role.AUDITOR)

TOWNSHIPS = {"echeng": "凤凰街道", "huarong": "华容镇", "liangzihu": "太和镇", "gedian": "葛店镇",
             "linkong": "燕矶镇"}


def project(unit: str, n: int = 1) -> d.ProjectRef:
    return d.ProjectRef(project_id=f"p-{unit}-{n}", unit=unit, township=TOWNSHIPS[unit],
                        name=f"{TOWNSHIPS[unit]}幸福食堂{n}(示例)", year=2022)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@dataclass
class Desk:
    """Holds folded states and applies decided events by stream, as a handler would."""

    problems: dict[uuid.UUID, d.ProblemState] = field(default_factory=dict)
    sequences: dict[str, d.UnitSequenceState] = field(default_factory=dict)
    projects: dict[str, d.ProjectRef] = field(default_factory=dict)
    evidence_index: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    log: list[Event] = field(default_factory=list)

    def problem(self, problem_id: uuid.UUID) -> d.ProblemState:
        return self.problems.get(problem_id, d.ProblemState(problem_id=problem_id))

    def sequence(self, unit: str) -> d.UnitSequenceState:
        return self.sequences.get(unit, d.UnitSequenceState(unit=unit))

    def apply(self, events: list[Event]) -> list[Event]:
        for event in events:
            if isinstance(event, e.SeqNoAllocated):
                self.sequences[event.unit] = d.evolve_sequence(self.sequence(event.unit), event)
            else:
                pid = event.problem_id  # type: ignore[attr-defined]
                self.problems[pid] = d.evolve(self.problem(pid), event)
                if isinstance(event, e.CloseOutRequested):
                    for h in event.attachment_hashes:
                        self.evidence_index.setdefault(h, set()).add(pid)
            self.log.append(event)
        return events

    def register(self, actor: Actor, now: datetime, *, unit: str | None = None,
                 project_ref: d.ProjectRef | None = None, source=e.ProblemSource.SELF_INSPECTION,
                 deadline: date | None = date(2024, 5, 7), immediate: bool = False,
                 problem_id: uuid.UUID | None = None, description: str = "未开展助餐服务",
                 rules: d.RectificationRules = RULES) -> uuid.UUID:
        ref = project_ref or project(unit or actor.unit or "echeng")
        self.projects[ref.project_id] = ref
        pid = problem_id or new_id()
        cmd = c.RegisterProblem(
            problem_id=pid, project_id=ref.project_id, description=description,
            deadline_kind=e.DeadlineKind.IMMEDIATE if immediate else e.DeadlineKind.DATE,
            deadline=None if immediate else deadline, responsible_person="责任人(示例)",
            source=source, source_ref="ledger-evt-1" if source is e.ProblemSource.LEDGER else None,
            ledger_reason="not_operating" if source is e.ProblemSource.LEDGER else None)
        self.apply(d.decide_register_problem(self.problem(pid), self.sequence(ref.unit), cmd,
                                             project=ref, actor=actor, now=now, rules=rules))
        return pid

    def start(self, pid: uuid.UUID, actor: Actor, now: datetime) -> list[Event]:
        return self.apply(d.decide_start_rectification(
            self.problem(pid), c.StartRectification(problem_id=pid, plan="引进专业运营机构"),
            actor=actor, now=now))

    def request(self, pid: uuid.UUID, actor: Actor, now: datetime,
                hashes: tuple[str, ...] | None = None) -> list[Event]:
        hashes = hashes or (content_hash(f"photo-{pid}"),)
        return self.apply(d.decide_request_close_out(
            self.problem(pid), c.RequestCloseOut(problem_id=pid, evidence_text="整改前后对比照片",
                                                 attachment_hashes=hashes),
            actor=actor, now=now, evidence_index=self.evidence_index))

    def verify(self, pid: uuid.UUID, actor: Actor, now: datetime) -> list[Event]:
        return self.apply(d.decide_verify_close_out(
            self.problem(pid), c.VerifyCloseOut(problem_id=pid, conclusion="经核验已整改到位"),
            actor=actor, now=now))

    def return_(self, pid: uuid.UUID, actor: Actor, now: datetime) -> list[Event]:
        return self.apply(d.decide_return_close_out(
            self.problem(pid), c.ReturnCloseOut(problem_id=pid, reason="缺少服务台账"),
            actor=actor, now=now))

    def request_extension(self, pid: uuid.UUID, actor: Actor, now: datetime,
                          new_deadline: date = date(2024, 5, 20)) -> list[Event]:
        return self.apply(d.decide_request_extension(
            self.problem(pid), c.RequestExtension(problem_id=pid, new_deadline=new_deadline,
                                                  reason="运营机构招标中"),
            actor=actor, now=now))

    def decide_extension(self, pid: uuid.UUID, actor: Actor, now: datetime,
                         approved: bool = True) -> list[Event]:
        return self.apply(d.decide_extension(
            self.problem(pid), c.DecideExtension(problem_id=pid, approved=approved,
                                                 reason="同意" if approved else "不同意"),
            actor=actor, now=now))

    def reopen(self, pid: uuid.UUID, actor: Actor, now: datetime,
               new_problem_id: uuid.UUID | None = None) -> uuid.UUID:
        new_pid = new_problem_id or new_id()
        state = self.problem(pid)
        self.apply(d.decide_reopen_problem(
            state, self.sequence(state.unit),
            c.ReopenProblem(problem_id=pid, new_problem_id=new_pid, reason="复查发现问题反弹"),
            actor=actor, now=now, rules=RULES))
        return new_pid

    def withdraw(self, pid: uuid.UUID, actor: Actor, now: datetime) -> list[Event]:
        return self.apply(d.decide_withdraw_problem(
            self.problem(pid), c.WithdrawProblem(problem_id=pid, reason="误登记"),
            actor=actor, now=now))

    def items(self) -> list[d.ProblemState]:
        return list(self.problems.values())
