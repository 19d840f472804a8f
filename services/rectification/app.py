"""The rectification service's composition root.

`build_deps` reads the campaign file into a `RectificationConfig` (config.py). The scorekeeper is
a background loop: every `score_check_interval` seconds it runs the deduction check through the
command pipeline (one `ApplyDeductions` per unit, handlers.py), which folds each unit's items and
reports from the store and appends the PointsDeducted that are due (idempotent: deterministic
event ids, one per (unit, rule, trigger ref), appended at the score stream's version).
`POST /scores/check` runs the same check on demand.
"""
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.rectification.api import PUBLIC_RESULTS, router
from services.rectification.config import (
    DEFAULT_SCORE_CHECK_INTERVAL,
    RectificationConfig,
    rectification_config,
)
from services.rectification.events import CONTRACT
from services.rectification.handlers import COMMANDS, apply_deductions
from services.rectification.projections import PROJECTIONS, REGISTRY_VIEW
from services.rectification.subscribers import CONSUMERS
from services.rectification.vocabulary import rectification_vocabulary
from shared.campaign import Campaign, load_campaign
from shared.logging import get_logger
from shared.messages import SYSTEM_ACTOR
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings

log = get_logger()


async def run_scorekeeper(runtime: Runtime[RectificationConfig]) -> None:
    """Check the deduction rules every `score_check_interval` seconds until shutdown."""
    config = runtime.deps
    if config.score_check_interval is None:
        return
    interval = config.score_check_interval or DEFAULT_SCORE_CHECK_INTERVAL
    while not runtime.shutting_down:
        try:
            await apply_deductions(runtime.commands, actor=SYSTEM_ACTOR, now=runtime.clock(),
                                   correlation_id=uuid.uuid4())
        except Exception as exc:
            # Whatever failed (the database away, a bug in one unit's check), the loop must live
            # on: the check is idempotent, so the next round simply tries again.
            log.warning("score_check_failed", error=type(exc).__name__, reason=str(exc)[:300])
        # Sleep in slices: shutdown sets `shutting_down` and waits for this task.
        loop = asyncio.get_running_loop()
        wake_at = loop.time() + interval
        while not runtime.shutting_down and loop.time() < wake_at:
            await asyncio.sleep(min(0.1, max(wake_at - loop.time(), 0)))


def build_deps(settings: Settings, pool: asyncpg.Pool, *, campaign: Campaign | None = None,
               score_check_interval: float | None = DEFAULT_SCORE_CHECK_INTERVAL,
               ) -> RectificationConfig:
    config = rectification_config(campaign or load_campaign(settings.campaign_file),
                                  score_check_interval=score_check_interval)
    for rule_id, why in config.not_applied:
        log.warning("deduction_rule_not_applied", rule=rule_id, reason=why)
    return config


SPEC: ServiceSpec[RectificationConfig] = ServiceSpec(
    contract=CONTRACT,
    description="Problem items and their 销号 life cycle, monthly lists, self-inspection reports, "
                "typical cases, progress and scores",
    commands=COMMANDS, router=router, consumers=[*CONSUMERS, REGISTRY_VIEW],
    projections=PROJECTIONS, build_deps=build_deps, background=[run_scorekeeper],
    migrations=Path(__file__).with_name("sql"),
    vocabulary=lambda config: rectification_vocabulary(config.campaign),
    public_paths=frozenset({PUBLIC_RESULTS}))


def create_app(settings: Settings | None = None, *, campaign: Campaign | None = None,
               score_check_interval: float | None = DEFAULT_SCORE_CHECK_INTERVAL,
               **kwargs: Any) -> FastAPI:
    """`campaign` overrides the campaign file; `score_check_interval=None` turns the periodic
    deduction check off (tests run it on demand through `POST /scores/check`)."""
    spec = SPEC
    if campaign is not None or score_check_interval != DEFAULT_SCORE_CHECK_INTERVAL:
        spec = dataclasses.replace(SPEC, build_deps=lambda settings, pool: build_deps(
            settings, pool, campaign=campaign, score_check_interval=score_check_interval))
    return create_service_app(spec, settings, **kwargs)
