"""The registry service's composition root: projects, households, liaisons, the 台账 ledger."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.registry.api import MAX_UPLOAD_BYTES, router
from services.registry.events import CONTRACT
from services.registry.handlers import COMMANDS, RegistryDeps
from services.registry.projections import all_projections
from services.registry.subscribers import CONSUMERS
from services.registry.vocabulary import registry_vocabulary
from shared.campaign import load_campaign
from shared.isolation import preload
from shared.personal_data import MasterKey, PostgresPersonalDataVault
from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings


def build_deps(settings: Settings, pool: asyncpg.Pool) -> RegistryDeps:
    """The campaign file (units, townships, types, the service rule, dates) and the key vault of
    personal data, on the service's own pool (only `lookback_registry` may read the keys),
    unwrapping keys with the master key the process holds (never stored in the database)."""
    # Uploaded files are read in forked children; the fork server imports the parser once.
    preload(["services.registry.importing.parsing"])
    return RegistryDeps(campaign=load_campaign(settings.campaign_file),
                        vault=PostgresPersonalDataVault(pool, MasterKey.from_settings(settings)))


SPEC: ServiceSpec[RegistryDeps] = ServiceSpec(
    contract=CONTRACT,
    description="Lookback registry service: projects, home-adaptation households, liaisons (附件1), "
                "operating status and the 台账 ledger",
    commands=COMMANDS,
    router=router,
    # Rectification's verified 销号 of a 台账 item marks the entry rectified (subscribers.py).
    consumers=CONSUMERS,
    projections=all_projections(),
    build_deps=build_deps,
    migrations=Path(__file__).with_name("sql"),
    body_limits={"/imports": MAX_UPLOAD_BYTES},
    vocabulary=lambda deps: registry_vocabulary(deps.campaign),
)


def create_app(settings: Settings | None = None, **kwargs: Any) -> FastAPI:
    return create_service_app(SPEC, settings, **kwargs)
