"""The inspection service's composition root: verifiable draws (抽查名单), visits and findings."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.inspection.api import router
from services.inspection.config import InspectionDeps
from services.inspection.events import CONTRACT
from services.inspection.handlers import COMMANDS
from services.inspection.projections import draw_projection, registry_view_projection
from services.inspection.vocabulary import inspection_vocabulary
from shared.campaign import load_campaign
from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings


def build_deps(settings: Settings, pool: asyncpg.Pool) -> InspectionDeps:
    """The campaign file (its units, project types, time zone and sampling rules)."""
    return InspectionDeps.from_campaign(load_campaign(settings.campaign_file))


SPEC: ServiceSpec[InspectionDeps] = ServiceSpec(
    contract=CONTRACT,
    description="Lookback inspection service: verifiable draws (抽查名单), visits and findings",
    commands=COMMANDS,
    router=router,
    # The registry view is a projection of another service's events, so it arrives over the bus
    # (a consumer); the draws are projected from the service's own ledger. Nothing here reacts.
    consumers=[registry_view_projection()],
    projections=[draw_projection()],
    build_deps=build_deps,
    migrations=Path(__file__).with_name("sql"),
    vocabulary=lambda deps: inspection_vocabulary(deps.campaign),
)


def create_app(settings: Settings | None = None, **kwargs: Any) -> FastAPI:
    return create_service_app(SPEC, settings, **kwargs)
