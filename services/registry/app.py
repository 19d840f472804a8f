"""The registry service's composition root: projects, households, liaisons, the 台账 ledger."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.registry.api import routes
from services.registry.events import ALL_EVENTS
from services.registry.handlers import RegistryDeps
from services.registry.projections import all_projections
from shared.campaign import load_campaign
from shared.personal_data import PostgresPersonalDataVault
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


def build_deps(runtime: Runtime) -> RegistryDeps:
    """The campaign file (units, townships, types, the service rule, dates) and the key vault of
    personal data, on the service's own pool (only `lookback_registry` may read the keys)."""
    return RegistryDeps(campaign=load_campaign(runtime.settings.campaign_file),
                        vault=PostgresPersonalDataVault(runtime.pool))


SPEC = ServiceSpec(
    name="registry",
    description="Lookback registry service: projects, home-adaptation households, liaisons (附件1), "
                "operating status and the 台账 ledger",
    events=list(ALL_EVENTS),
    routes=routes,
    projections=all_projections(),
    build_deps=build_deps,
)


def create_app(settings: Settings | None = None, **kwargs: Any) -> FastAPI:
    return create_service_app(SPEC, settings, **kwargs)
