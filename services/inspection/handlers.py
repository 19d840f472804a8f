"""The inspection service's use cases: load the draw stream, decide with the pure domain, append.

One stream per draw (`draw-<draw_id>`) holds the frame, the entropy, the sample, the visits and
the findings, so every rule that needs the sample (only sampled targets are visited, a household
is replaced by the next pick of its own sequence) is checked against one consistent state.
Frames are frozen from the service's own view of the registry (subscribers.py), never from the
registry's tables.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Callable, Sequence

import asyncpg

from services.inspection import domain, sampling
from services.inspection.commands import (
    AddDiscretionaryPick, CommitEntropy, FreezeFrame, RecordFinding, RecordVisit, ReplaceHousehold,
    RevealEntropy, ScheduleVisit,
)
from services.inspection.events import ALL_EVENTS
from services.inspection.subscribers import project_view, registry_view
from shared.campaign import Campaign, CampaignConfigError, ProjectKind
from shared.errors import DomainError, NotFoundError
from shared.handling import Outcome, execute, load
from shared.messages import Actor, Event, EventRegistry
from shared.store import EventStore

EVENTS = EventRegistry()
EVENTS.register(*ALL_EVENTS)


def draw_stream(draw_id: str) -> str:
    return f"draw-{draw_id}"


def sampling_policy(campaign: Campaign) -> domain.SamplingPolicy:
    """The campaign's sampling settings as the domain's policy.

    `lookback-draw-v1` draws exactly ⌈N/2⌉ for R2 and one township for R3; a campaign asking for
    another share would get a sample that silently ignores it, so it is refused at start-up
    instead (a new share is a new algorithm version).
    """
    settings = campaign.sampling
    problems = []
    if settings.r2_numerator * 2 != settings.r2_denominator:
        problems.append(("sampling.r2_numerator", f"{sampling.ALGORITHM_VERSION} draws exactly "
                         "half (1/2) of an R2 stratum"))
    if settings.r3_townships_to_draw != 1:
        problems.append(("sampling.r3_townships_to_draw",
                         f"{sampling.ALGORITHM_VERSION} draws exactly one township per unit"))
    if problems:
        raise CampaignConfigError(f"campaign {campaign.id}", problems)
    rules = {t.code: sampling.Rule(t.sampling_rule.value) for t in campaign.project_types}
    checklists = {code: domain.DEFAULT_CHECKLISTS.get(code, MappingProxyType({}))
                  for code in rules}
    return domain.SamplingPolicy(
        rules=MappingProxyType(rules),
        min_households=settings.r3_min_households_per_township,
        households_per_township=settings.r3_households_to_draw,
        checklists=MappingProxyType(checklists))


@dataclass(frozen=True)
class InspectionDeps:
    """What the service needs besides its pool and store: the campaign and its sampling policy."""

    campaign: Campaign
    policy: domain.SamplingPolicy = field(default=domain.DEFAULT_POLICY)

    @classmethod
    def from_campaign(cls, campaign: Campaign) -> "InspectionDeps":
        return cls(campaign=campaign, policy=sampling_policy(campaign))

    @property
    def units(self) -> tuple[str, ...]:
        return self.campaign.unit_codes

    @property
    def programme_type(self) -> str:
        """The project type code of home-adaptation programmes (households belong to one)."""
        for project_type in self.campaign.project_types:
            if project_type.kind == ProjectKind.PROGRAMME:
                return project_type.code
        return domain.ProjectType.HOME_ADAPTATION.value

    def local(self, moment: datetime) -> datetime:
        """The moment in the campaign's time zone, so `now.date()` is the local day (a visit on
        the morning of May 10 in Ezhou is still May 9 in UTC)."""
        return moment.astimezone(self.campaign.tz)


class Inspection:
    """The handlers. Each one: read what the decision needs, then `execute` on the draw stream."""

    def __init__(self, store: EventStore, pool: asyncpg.Pool, deps: InspectionDeps) -> None:
        self.store, self.pool, self.deps = store, pool, deps

    async def load(self, draw_id: str) -> tuple[domain.DrawState, int]:
        """The draw folded from its stream; NotFoundError when no frame was frozen under the id."""
        state, version = await load(self.store, EVENTS, draw_stream(draw_id), domain.evolve,
                                    domain.INITIAL_STATE)
        if state.stage is domain.Stage.NEW:
            raise NotFoundError(f"draw {draw_id!r} does not exist", code="draw_not_found")
        return state, version

    async def _execute(self, draw_id: str, decide: Callable[[domain.DrawState], Sequence[Event]],
                       *, actor: Actor, now: datetime,
                       correlation_id: uuid.UUID | None) -> Outcome[domain.DrawState]:
        return await execute(self.store, EVENTS, draw_stream(draw_id), evolve=domain.evolve,
                             initial=domain.INITIAL_STATE, decide=decide, actor=actor, now=now,
                             correlation_id=correlation_id)

    async def freeze_frame(self, cmd: FreezeFrame, *, actor: Actor, now: datetime,
                           correlation_id: uuid.UUID | None = None) -> Outcome[domain.DrawState]:
        """Freeze every stratum's frame from what this service knows of the registry right now."""
        now = self.deps.local(now)
        projects, households = await registry_view(self.pool)

        def decide(state: domain.DrawState) -> list[Event]:
            try:
                return domain.decide_freeze_frame(
                    state, cmd, actor=actor, now=now, units=self.deps.units, projects=projects,
                    households=households, policy=self.deps.policy)
            except sampling.FrameError as exc:  # e.g. a township name with "|" from a bad import
                raise DomainError(f"the frame cannot be built: {exc}", code="frame_invalid") from exc

        return await self._execute(cmd.draw_id, decide, actor=actor, now=now,
                                   correlation_id=correlation_id)

    async def commit_entropy(self, cmd: CommitEntropy, *, actor: Actor, now: datetime,
                             correlation_id: uuid.UUID | None = None) -> Outcome[domain.DrawState]:
        now = self.deps.local(now)
        return await self._execute(
            cmd.draw_id, lambda s: domain.decide_commit_entropy(s, cmd, actor=actor, now=now),
            actor=actor, now=now, correlation_id=correlation_id)

    async def reveal_and_draw(self, cmd: RevealEntropy, *, actor: Actor, now: datetime,
                              correlation_id: uuid.UUID | None = None) -> Outcome[domain.DrawState]:
        """Reveal the committed entropy and draw every stratum with it, in one append."""
        now = self.deps.local(now)
        return await self._execute(
            cmd.draw_id, lambda s: domain.decide_reveal_and_draw(s, cmd, actor=actor, now=now),
            actor=actor, now=now, correlation_id=correlation_id)

    async def add_discretionary_pick(self, cmd: AddDiscretionaryPick, *, actor: Actor,
                                     now: datetime, correlation_id: uuid.UUID | None = None
                                     ) -> Outcome[domain.DrawState]:
        now = self.deps.local(now)
        project = await project_view(self.pool, cmd.project_id)
        return await self._execute(
            cmd.draw_id, lambda s: domain.decide_add_discretionary_pick(
                s, cmd, actor=actor, now=now, project=project),
            actor=actor, now=now, correlation_id=correlation_id)

    async def replace_household(self, cmd: ReplaceHousehold, *, actor: Actor, now: datetime,
                                correlation_id: uuid.UUID | None = None) -> Outcome[domain.DrawState]:
        now = self.deps.local(now)
        return await self._execute(
            cmd.draw_id, lambda s: domain.decide_replace_household(s, cmd, actor=actor, now=now),
            actor=actor, now=now, correlation_id=correlation_id)

    async def schedule_visit(self, cmd: ScheduleVisit, *, actor: Actor, now: datetime,
                             correlation_id: uuid.UUID | None = None) -> Outcome[domain.DrawState]:
        now = self.deps.local(now)
        return await self._execute(
            cmd.draw_id, lambda s: domain.decide_schedule_visit(s, cmd, actor=actor, now=now),
            actor=actor, now=now, correlation_id=correlation_id)

    async def record_visit(self, cmd: RecordVisit, *, actor: Actor, now: datetime,
                           correlation_id: uuid.UUID | None = None) -> Outcome[domain.DrawState]:
        """The visit's outcome; each finding becomes a FindingRecorded for rectification."""
        now = self.deps.local(now)
        return await self._execute(
            cmd.draw_id, lambda s: domain.decide_record_visit(s, cmd, actor=actor, now=now,
                                                              policy=self.deps.policy),
            actor=actor, now=now, correlation_id=correlation_id)

    async def record_finding(self, cmd: RecordFinding, *, actor: Actor, now: datetime,
                             correlation_id: uuid.UUID | None = None) -> Outcome[domain.DrawState]:
        now = self.deps.local(now)
        return await self._execute(
            cmd.draw_id, lambda s: domain.decide_record_finding(s, cmd, actor=actor, now=now),
            actor=actor, now=now, correlation_id=correlation_id)


def new_events(outcome: Outcome[Any], kind: type[Event]) -> list[Any]:
    """The events of one kind an outcome appended (e.g. the findings of a recorded visit)."""
    return [event for event in outcome.events if isinstance(event, kind)]
