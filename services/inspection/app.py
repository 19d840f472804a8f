"""The inspection service's composition root."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings

SPEC = ServiceSpec(name="inspection", description="Lookback inspection service", events=[])


def create_app(settings: Settings | None = None, **kwargs: Any) -> FastAPI:
    return create_service_app(SPEC, settings, **kwargs)
