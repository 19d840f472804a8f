"""The registry's use cases: load the stream(s) → decide (pure) → append with the expected version(s).

Two scripts, both short:

- `handle(cmd)`: one command, one stream, one append with the version read as the expected one;
- `import_plan(plan)`: a whole spreadsheet, every stream it touches, ONE atomic multi-stream append
  with an expected version per stream. All rows or none; a concurrent change to any of those
  streams refuses the append before anything is written, and we decide again from fresh state.

Personal fields are sealed per subject (shared/personal_data.py). `decide` is pure and needs the
subjects' keys in hand, so keys are fetched first. Keys for subjects that do not exist yet are
created only once `decide` has accepted the command: a first pass seals with throw-away keys (it
only validates), and only if it produced events do we create the real keys and decide again. A
refused command (422) therefore leaves no trace at all, not even a key row. (Keys are written
outside the append's transaction: if the append itself then loses a race, the keys stay behind,
naming no one and reused when those subjects are registered; no ciphertext under them exists.)
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Mapping, TypeVar

from services.registry import commands as c
from services.registry import domain as d
from services.registry.events import registry_events
from services.registry.importing import ImportDecision, ImportPlan, decide_import
from shared.campaign import Campaign
from shared.errors import ConcurrencyError
from shared.handling import CONCURRENCY_RETRIES, load
from shared.logging import get_logger
from shared.messages import Actor, Event, new_event
from shared.personal_data import Keyring, PersonalDataVault
from shared.store import NO_STREAM, EventStore

log = get_logger()

EVENTS = registry_events()
T = TypeVar("T")


@dataclass(frozen=True)
class RegistryDeps:
    """What the registry's handlers, projections and routes share (built once per process)."""

    campaign: Campaign
    vault: PersonalDataVault


@dataclass(frozen=True)
class CommandOutcome:
    stream_id: str
    state: d.RegistryState
    events: list[Event]
    version: int  # the stream's version after the command

    @property
    def changed(self) -> bool:
        return bool(self.events)


@dataclass(frozen=True)
class BatchOutcome:
    commands: int
    events: int
    streams: int
    correlation_id: uuid.UUID


@dataclass(frozen=True)
class ImportOutcome:
    source_digest: str
    correlation_id: uuid.UUID
    project_rows: int
    household_rows: int
    projects_registered: int
    programmes_registered: int
    households_registered: int
    unchanged: int
    events_appended: int
    streams_written: int

    def as_dict(self) -> dict[str, object]:
        return {"source_digest": self.source_digest, "correlation_id": str(self.correlation_id),
                "project_rows": self.project_rows, "household_rows": self.household_rows,
                "projects_registered": self.projects_registered,
                "programmes_registered": self.programmes_registered,
                "households_registered": self.households_registered, "unchanged": self.unchanged,
                "events_appended": self.events_appended, "streams_written": self.streams_written}


def _known_keys(ring: Keyring) -> dict[str, bytes | None]:
    """The ring's keys, erased subjects as None (so sealing for them still refuses)."""
    live = ring.generated_keys()
    return {subject: live.get(subject) for subject in ring.subject_ids}


class RegistryHandlers:
    def __init__(self, store: EventStore, deps: RegistryDeps) -> None:
        self.store, self.deps = store, deps

    @property
    def campaign(self) -> Campaign:
        return self.deps.campaign

    async def _decide_sealed(self, decide: Callable[[Keyring], T], subjects: Iterable[str],
                             produced: Callable[[T], bool]) -> T:
        """Run `decide` with the subjects' keys; create missing keys only for an accepted command."""
        wanted = list(dict.fromkeys(subjects))
        stored = await self.deps.vault.keyring(wanted) if wanted else Keyring()
        known = _known_keys(stored)
        trial = Keyring(known, generate_missing=True)
        result = decide(trial)  # raises (422/403/404/409) with nothing written anywhere
        missing = trial.subject_ids - stored.subject_ids
        if not produced(result) or not missing:
            return result
        created = await self.deps.vault.keyring(sorted(missing), create=True)
        return decide(Keyring({**known, **_known_keys(created)}))

    async def handle(self, cmd: c.RegistryCommand, *, actor: Actor, now: datetime,
                     correlation_id: uuid.UUID | None = None) -> CommandOutcome:
        """One command: load its stream, decide, append with the expected version."""
        stream_id = d.stream_for(cmd, self.campaign)
        correlation = correlation_id or uuid.uuid4()
        for attempt in range(CONCURRENCY_RETRIES):
            state, version = await load(self.store, EVENTS, stream_id, d.evolve,
                                        d.initial_state(stream_id))
            events = await self._decide_sealed(
                lambda seal: d.decide(state, cmd, actor=actor, now=now, campaign=self.campaign,
                                      seal=seal),
                d.subjects_for(state, cmd), produced=bool)
            if not events:
                return CommandOutcome(stream_id, state, [], version)
            batch = [new_event(stream_id, event, actor=actor, occurred_at=now,
                               correlation_id=correlation) for event in events]
            try:
                await self.store.append(batch, {stream_id: version or NO_STREAM})
            except ConcurrencyError:
                if attempt == CONCURRENCY_RETRIES - 1:
                    raise
                continue
            log.info("command_handled", service="registry", command=type(cmd).__name__,
                     stream_id=stream_id, events=[e.type_name for e in events], actor=actor.id,
                     correlation_id=str(correlation))
            return CommandOutcome(stream_id, d.fold(state, events), list(events),
                                  version + len(events))
        raise AssertionError("unreachable")

    async def _load_many(self, stream_ids: list[str]) -> dict[str, tuple[d.RegistryState, int]]:
        async def one(stream_id: str) -> tuple[str, tuple[d.RegistryState, int]]:
            return stream_id, await load(self.store, EVENTS, stream_id, d.evolve,
                                         d.initial_state(stream_id))

        return dict(await asyncio.gather(*(one(s) for s in stream_ids)))

    async def handle_batch(self, commands: Iterable[c.RegistryCommand], *, actor: Actor,
                           now: datetime, correlation_id: uuid.UUID | None = None,
                           retry_on_conflict: bool = True) -> BatchOutcome:
        """Several commands, in order, as ONE atomic multi-stream append: all take effect or none
        (the sample data goes in this way, so a crash can never leave half a sample)."""
        commands = list(commands)
        correlation = correlation_id or uuid.uuid4()
        stream_ids = list(dict.fromkeys(d.stream_for(cmd, self.campaign) for cmd in commands))
        attempts = CONCURRENCY_RETRIES if retry_on_conflict else 1
        for attempt in range(attempts):
            loaded = await self._load_many(stream_ids)
            subjects = [subject for cmd in commands
                        for subject in d.subjects_for(loaded[d.stream_for(cmd, self.campaign)][0], cmd)]

            def decide_all(seal: Keyring) -> dict[str, list[Event]]:
                working = {s: state for s, (state, _) in loaded.items()}
                decided: dict[str, list[Event]] = {}
                for cmd in commands:
                    stream = d.stream_for(cmd, self.campaign)
                    events = d.decide(working[stream], cmd, actor=actor, now=now,
                                      campaign=self.campaign, seal=seal)
                    working[stream] = d.fold(working[stream], events)
                    if events:
                        decided.setdefault(stream, []).extend(events)
                return decided

            decided = await self._decide_sealed(decide_all, subjects, produced=bool)
            batch = [new_event(stream_id, event, actor=actor, occurred_at=now,
                               correlation_id=correlation)
                     for stream_id, events in decided.items() for event in events]
            expected = {s: loaded[s][1] or NO_STREAM for s in decided}
            if batch:
                try:
                    await self.store.append(batch, expected)
                except ConcurrencyError:
                    if attempt == attempts - 1:
                        raise
                    continue
            log.info("commands_handled", service="registry", commands=len(commands),
                     events=len(batch), streams=len(expected), actor=actor.id,
                     correlation_id=str(correlation))
            return BatchOutcome(commands=len(commands), events=len(batch), streams=len(expected),
                                correlation_id=correlation)
        raise AssertionError("unreachable")

    async def import_plan(self, plan: ImportPlan, *, actor: Actor, now: datetime,
                          correlation_id: uuid.UUID | None = None) -> ImportOutcome:
        """A parsed spreadsheet: every stream it touches, one atomic append (or ImportRefused)."""
        correlation = correlation_id or uuid.uuid4()
        stream_ids = plan.stream_ids(self.campaign)
        for attempt in range(CONCURRENCY_RETRIES):
            loaded = await self._load_many(stream_ids)
            states: Mapping[str, d.RegistryState] = {s: state for s, (state, _) in loaded.items()}
            decision: ImportDecision = await self._decide_sealed(
                lambda seal: decide_import(plan, states, actor=actor, now=now,
                                           campaign=self.campaign, seal=seal),
                plan.subject_ids(), produced=lambda result: result.event_count > 0)
            batch = [new_event(stream_id, event, actor=actor, occurred_at=now,
                               correlation_id=correlation)
                     for stream_id, events in decision.events_by_stream.items() for event in events]
            # Every written stream at the version we decided on: any concurrent change anywhere
            # refuses the whole append, so the import is never half based on stale state.
            expected = {s: loaded[s][1] or NO_STREAM for s in decision.events_by_stream}
            if batch:
                try:
                    await self.store.append(batch, expected)
                except ConcurrencyError:
                    if attempt == CONCURRENCY_RETRIES - 1:
                        raise
                    continue
            outcome = ImportOutcome(
                source_digest=plan.source_digest, correlation_id=correlation,
                project_rows=plan.project_rows, household_rows=plan.household_rows,
                projects_registered=decision.projects_registered,
                programmes_registered=decision.programmes_registered,
                households_registered=decision.households_registered,
                unchanged=decision.unchanged, events_appended=len(batch),
                streams_written=len(expected))
            log.info("import_applied", service="registry", actor=actor.id,
                     correlation_id=str(correlation), source_digest=plan.source_digest,
                     events=len(batch), streams=len(expected),
                     households=decision.households_registered,
                     projects=decision.projects_registered, unchanged=decision.unchanged)
            return outcome
        raise AssertionError("unreachable")
