"""The notifier service's composition root."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.notifier.events import CONTRACT
from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings

SPEC: ServiceSpec[None] = ServiceSpec(contract=CONTRACT, description="Lookback notifier service",
                                      migrations=Path(__file__).with_name("sql"))


def create_app(settings: Settings | None = None, **kwargs: Any) -> FastAPI:
    return create_service_app(SPEC, settings, **kwargs)
