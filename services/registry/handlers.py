"""The registry's command table: for each command, the streams it decides on and the pure decision.

The kernel's pipeline (shared/pipeline.py) runs every row the same way: authorize, prepare, load,
decide, append with the expected versions, retry a conflict, envelope, log, count.

Personal fields are sealed per subject (shared/personal_data.py), and `decide` is pure, so the
subjects' keys are fetched in `prepare`, inside the command's transaction: keys a decision needs
but that do not exist yet are created there, and a refused command rolls them back with
everything else. Which subjects a decision seals is learnt by running it once with throw-away
keys (`sealing`), so the rule "who is sealed under which subject" lives in the domain only.

Two rows decide several commands at once, in order, against one working state, as one append:
a spreadsheet import (all rows or none) and the sample data.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Sequence

from services.registry import commands as c
from services.registry import domain as d
from services.registry.importing.deciding import ImportDecision, decide_import
from shared.campaign import Campaign
from shared.messages import Actor, Event
from shared.personal_data import Keyring, PersonalDataVault
from shared.pipeline import CommandTable, Decision, Handler, Preparation, StreamSpec


@dataclass(frozen=True)
class RegistryDeps:
    """What the registry's handlers, projections and routes share (built once per process)."""

    campaign: Campaign
    vault: PersonalDataVault


RegistryDecision = Decision[Any, Keyring | None, RegistryDeps]


# ----- which streams ----------------------------------------------------------------------------


def new_project(cmd: c.RegisterProject, _: RegistryDeps) -> list[StreamSpec[Any]]:
    return [d.project_spec(d.project_id_for(cmd.unit, cmd.project_type, cmd.name))]


def the_project(cmd: c.ChangeOperator | c.ChangeServices | c.AssessProject | c.RetireProject
                | c.MarkLedgerEntryRectified | c.ReopenLedgerRectification,
                _: RegistryDeps) -> list[StreamSpec[Any]]:
    return [d.project_spec(cmd.project_id)]


def new_programme(cmd: c.RegisterAdaptationProgramme, deps: RegistryDeps) -> list[StreamSpec[Any]]:
    return [d.spec_for_stream(d.programme_stream_for(cmd, deps.campaign))]


def the_programme(cmd: c.RegisterHouseholds, _: RegistryDeps) -> list[StreamSpec[Any]]:
    return [d.programme_spec(cmd.programme_id)]


def unit_liaisons(cmd: c.RegisterLiaison, _: RegistryDeps) -> list[StreamSpec[Any]]:
    return [d.liaison_spec(cmd.unit)]


def stream_spec(cmd: c.RegistryCommand, deps: RegistryDeps) -> StreamSpec[Any]:
    """The one stream a single registry command decides on (its own row of the table says)."""
    [spec] = COMMANDS[type(cmd)].streams(cmd, deps)
    return spec


def every_stream(cmd: c.ImportRegistry | c.RegisterSample, deps: RegistryDeps
                 ) -> list[StreamSpec[Any]]:
    specs = (stream_spec(command, deps) for command in cmd.commands)
    return list({spec.stream_id: spec for spec in specs}.values())


# ----- decisions --------------------------------------------------------------------------------


def campaign_rule(decide: Callable[..., list[Event]]) -> Callable[[RegistryDecision], list[Event]]:
    """A one-stream decision that needs the campaign's rules."""
    return lambda x: decide(x.only_state, x.command, actor=x.actor, now=x.now,
                            campaign=x.deps.campaign)


def sealed_rule(decide: Callable[..., list[Event]]) -> Callable[[RegistryDecision], list[Event]]:
    """A one-stream decision that seals personal fields with the prepared keys."""
    return lambda x: decide(x.only_state, x.command, actor=x.actor, now=x.now,
                            campaign=x.deps.campaign, seal=x.inputs)


def decide_alone(cmd: c.RegistryCommand, state: d.RegistryState, *, actor: Actor, now: datetime,
                 deps: RegistryDeps, seal: Keyring | None = None) -> list[Event]:
    """One command decided by its own row of the table against a given state (pure)."""
    handler = COMMANDS[type(cmd)]
    return list(handler.decide(Decision(command=cmd, states={"": state}, inputs=seal,
                                        actor=actor, now=now, deps=deps)))


def decide_one(x: RegistryDecision, cmd: c.RegistryCommand, state: d.RegistryState) -> list[Event]:
    """One command of a batch, against the batch's working state."""
    return decide_alone(cmd, state, actor=x.actor, now=x.now, deps=x.deps, seal=x.inputs)


def decide_batch(x: Decision[c.RegisterSample, Keyring | None, RegistryDeps]) -> list[Event]:
    """Every command in order against the working states; the first refusal refuses them all."""
    working = dict(x.states)
    decided: list[Event] = []
    for cmd in x.command.commands:
        stream = stream_spec(cmd, x.deps).stream_id
        events = decide_one(x, cmd, working[stream])
        working[stream] = d.fold(working[stream], events)
        decided.extend(events)
    return decided


def decide_rows(x: Decision[c.ImportRegistry, Keyring | None, RegistryDeps]) -> list[Event]:
    return list(import_decision(x).events)


def import_decision(x: Decision[c.ImportRegistry, Keyring | None, RegistryDeps]) -> ImportDecision:
    return decide_import(x.command, x.states, actor=x.actor,
                         stream_of=lambda cmd: stream_spec(cmd, x.deps).stream_id,
                         decide=lambda cmd, state: decide_one(x, cmd, state))


# ----- personal-data keys ---------------------------------------------------------------------------


def sealing(subjects: Callable[[Preparation[Any, RegistryDeps]], Sequence[str]]
            ) -> Callable[[Preparation[Any, RegistryDeps]], Awaitable[Keyring]]:
    """A `prepare` that hands the decision the keys of every subject it seals.

    The keys of the subjects the command names are fetched first; the decision then runs once
    with those and throw-away keys for any other subject (it only tells which subjects it
    seals); the keys it was missing are created, in the command's transaction, so a refusal
    (which raises here or in the real decision) leaves no key row behind.
    """

    async def prepare(p: Preparation[Any, RegistryDeps]) -> Keyring:
        vault = p.deps.vault
        known = _live_keys(await vault.keyring(subjects(p), conn=p.conn))
        trial = Keyring(known, generate_missing=True)
        handler = COMMANDS[type(p.command)]
        events = handler.decide(Decision(command=p.command, states=dict(p.states), inputs=trial,
                                         actor=p.actor, now=p.now, deps=p.deps))
        missing = sorted(trial.subject_ids - set(known))
        if not events or not missing:
            return Keyring(known)
        created = await vault.keyring(missing, create=True, conn=p.conn)
        return Keyring({**known, **_live_keys(created)})

    return prepare


def _live_keys(ring: Keyring) -> dict[str, bytes | None]:
    """The ring's keys, erased subjects as None (so sealing for them still refuses)."""
    live = ring.generated_keys()
    return {subject: live.get(subject) for subject in ring.subject_ids}


# The personal-data subjects a command names, from its fields and its stream's state.
SUBJECTS: dict[type, Callable[[Any, Any], list[str]]] = {
    c.RegisterHouseholds: lambda cmd, _state: d.household_subjects(cmd),
    c.RegisterLiaison: lambda cmd, state: d.liaison_subjects(state, cmd),
}


def named_subjects(p: Preparation[Any, RegistryDeps]) -> list[str]:
    """The subjects the command (or each command of a batch) names."""
    found: list[str] = []
    for cmd in getattr(p.command, "commands", (p.command,)):
        subjects = SUBJECTS.get(type(cmd))
        if subjects is not None:
            spec = stream_spec(cmd, p.deps)
            found += subjects(cmd, p.states.get(spec.stream_id, spec.initial))
    return found


# ----- the table ----------------------------------------------------------------------------------

COMMANDS: CommandTable = {
    c.RegisterProject: Handler(streams=new_project, decide=campaign_rule(d.decide_register_project)),
    c.ChangeOperator: Handler(streams=the_project, decide=campaign_rule(d.decide_change_operator)),
    c.ChangeServices: Handler(streams=the_project, decide=campaign_rule(d.decide_change_services)),
    c.AssessProject: Handler(streams=the_project, decide=campaign_rule(d.decide_assess_project)),
    c.RetireProject: Handler(streams=the_project, decide=campaign_rule(d.decide_retire_project)),
    # Reactions to rectification's events only (subscribers.py); no route sends them.
    c.MarkLedgerEntryRectified: Handler(
        streams=the_project, decide=campaign_rule(d.decide_mark_ledger_entry_rectified)),
    c.ReopenLedgerRectification: Handler(
        streams=the_project, decide=campaign_rule(d.decide_reopen_ledger_rectification)),
    c.RegisterAdaptationProgramme: Handler(streams=new_programme,
                                           decide=campaign_rule(d.decide_register_programme)),
    c.RegisterHouseholds: Handler(streams=the_programme, prepare=sealing(named_subjects),
                                  decide=sealed_rule(d.decide_register_households)),
    c.RegisterLiaison: Handler(streams=unit_liaisons, prepare=sealing(named_subjects),
                               decide=sealed_rule(d.decide_register_liaison)),
    c.ImportRegistry: Handler(streams=every_stream, prepare=sealing(named_subjects),
                              decide=decide_rows, route=d.stream_of),
    c.RegisterSample: Handler(streams=every_stream, prepare=sealing(named_subjects),
                              decide=decide_batch, route=d.stream_of),
}
