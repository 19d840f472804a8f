"""Loading the sample data (seed.py) through the registry's own handlers.

`lookback up` calls `seed_if_empty` on every start, and `lookback seed` does the same on demand:
the sample goes in only while the registry has no event at all, so real data is never mixed with
examples (and seed commands such as an assessment are facts that must not be repeated).

The whole sample is ONE command, `RegisterSample`, through the registry's pipeline: one atomic
multi-stream append, so a crash can never leave half a sample that "is not empty" and so would
never be completed. Two processes
seeding at once both find the registry empty; the second append then fails on the expected
versions and that process simply reports that the sample is already there.

The commands run as SEED_ACTOR (`示例数据`) at the seed's own moment (`SeedPlan.as_of`, inside the
campaign), so the sample reads as it would have been filed and every event says it is a sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.registry import commands as c
from services.registry import queries as q
from services.registry.events import CONTRACT
from services.registry.handlers import COMMANDS, RegistryDeps
from services.registry.seed import build_seed
from shared.campaign import load_campaign
from shared.errors import ConcurrencyError
from shared.logging import get_logger
from shared.messages import deterministic_id
from shared.personal_data import MasterKey, PostgresPersonalDataVault
from shared.pipeline import CommandPipeline
from shared.provisioning import service_role
from shared.settings import Settings
from shared.store import PostgresEventStore, create_pool

log = get_logger()


@dataclass(frozen=True)
class SeedReport:
    commands: int
    events: int
    streams: int


async def registry_is_empty(pool: asyncpg.Pool) -> bool:
    return not await q.has_events(pool, CONTRACT.categories)


def pipeline(pool: asyncpg.Pool, deps: RegistryDeps) -> CommandPipeline[RegistryDeps]:
    """The registry's own pipeline, outside a service process (the seed command)."""
    # One attempt: two processes seeding at once both found the registry empty; the second
    # append then conflicts and that process simply reports the sample is already there.
    return CommandPipeline(service=CONTRACT.service, table=COMMANDS, events=CONTRACT.registry(),
                           store=PostgresEventStore(pool), deps=deps, retries=1)


async def seed_with(commands: CommandPipeline[RegistryDeps], *, liaisons: bool = True
                    ) -> SeedReport | None:
    """Run every sample command as one atomic append; None if another process got there first."""
    plan = build_seed(commands.deps.campaign, liaisons=liaisons)
    try:
        result = await commands.run(
            c.RegisterSample(commands=tuple(plan.commands)), actor=plan.actor, now=plan.as_of,
            # one correlation id for the whole sample: its events can be found together
            correlation_id=deterministic_id("registry", "seed", commands.deps.campaign.id))
    except ConcurrencyError:
        log.info("registry_seed_skipped", service="registry", reason="seeded concurrently")
        return None
    report = SeedReport(commands=len(plan.commands), events=len(result.events),
                        streams=len({a.stream_id for a in result.appended}))
    log.info("registry_seeded", service="registry", commands=report.commands,
             events=report.events, streams=report.streams)
    return report


async def seed_if_empty(settings: Settings, *, liaisons: bool = True) -> SeedReport | None:
    """Load the sample into a registry that has no event yet; None if it had some."""
    if settings.database_url is None:
        raise ValueError("seeding needs settings.database_url")
    role = service_role(CONTRACT.service)
    pool = await create_pool(settings.database_url, role=role,
                             password=settings.database_password(role), max_size=4)
    try:
        if not await registry_is_empty(pool):
            log.info("registry_seed_skipped", service="registry", reason="the registry has events")
            return None
        deps = RegistryDeps(campaign=load_campaign(settings.campaign_file),
                            vault=PostgresPersonalDataVault(pool, MasterKey.from_settings(settings)))
        return await seed_with(pipeline(pool, deps), liaisons=liaisons)
    finally:
        await pool.close()
