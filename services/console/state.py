"""What the console's pages share while it runs: settings, labels, templates, its accounts,
the services' client and the evidence store."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
from jinja2 import Environment

from services.console.accounts import Accounts
from services.console.backend import Backend, Caller, ServiceRefused
from services.console.config import SERVICES, ConsoleSettings
from services.console.evidence import EvidenceStore
from services.console.labels import Labels
from shared.campaign import Campaign
from shared.settings import Settings


@dataclass
class ConsoleState:
    settings: Settings
    console: ConsoleSettings
    campaign: Campaign
    labels: Labels
    templates: Environment
    evidence: EvidenceStore
    pool: asyncpg.Pool | None = None
    accounts: Accounts | None = None
    backend: Backend | None = None
    vocabulary_task: asyncio.Task[Any] | None = None


async def load_vocabularies(state: ConsoleState, caller: Caller) -> None:
    """Each service's Chinese labels (`GET /vocabulary`), asked as the first person who opens a
    page (the console has no identity of its own to ask with). A service without one leaves the
    fallback labels in place; one that is down is asked again by a later page."""
    for service in SERVICES:
        if service in state.labels.loaded:
            continue
        try:
            state.labels.merge_vocabulary(service, await caller.get(service, "/vocabulary"))
        except ServiceRefused as exc:
            if exc.status in (404, 405):
                state.labels.loaded.add(service)  # this service has none: fallback it is


def ensure_vocabularies(state: ConsoleState, caller: Caller) -> None:
    if state.labels.loaded >= set(SERVICES):
        return
    if state.vocabulary_task is None or state.vocabulary_task.done():
        state.vocabulary_task = asyncio.create_task(load_vocabularies(state, caller),
                                                    name="console:vocabulary")
