"""The inspection service's composition root."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.inspection.api import routes
from services.inspection.events import CONTRACT
from services.inspection.handlers import InspectionDeps
from services.inspection.projections import draw_projection
from services.inspection.subscribers import registry_consumer
from shared.campaign import load_campaign
from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings


def build_deps(settings: Settings, pool: asyncpg.Pool) -> InspectionDeps:
    """The campaign file (its units, project types and sampling settings) as the service's policy."""
    return InspectionDeps.from_campaign(load_campaign(settings.campaign_file))


SPEC: ServiceSpec[InspectionDeps] = ServiceSpec(
    contract=CONTRACT,
    description="Lookback inspection service: verifiable draws (抽查名单), visits and findings",
    router=routes(),
    consumers=[registry_consumer()],
    projections=[draw_projection()],
    build_deps=build_deps,
    migrations=Path(__file__).with_name("sql"),
)


def create_app(settings: Settings | None = None, **kwargs: Any) -> FastAPI:
    return create_service_app(SPEC, settings, **kwargs)
