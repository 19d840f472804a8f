"""`lookback audit replay`: every service's read models, rebuilt from the log alone, equal the live
ones after a campaign; a corrupted read-model row is named by table and key."""
from __future__ import annotations

import asyncpg
import pytest

from services.system import replay_read_models
from shared.settings import Settings
from tests.audit.campaign import campaign

pytestmark = pytest.mark.integration


async def test_replay_after_a_campaign_is_identical_and_finds_a_corrupted_row(database, tmp_path):
    async with campaign(database, tmp_path) as world:
        settings = Settings(database_url=database, data_dir=tmp_path)
        report = await replay_read_models(settings)
        assert report.identical, report.summary()
        assert {"registry.projects", "rectification.problems", "inspection.draws",
                "inspection.draw_picks", "inspection.projects"} <= set(report.tables)
        assert report.summary().startswith(f"identical: {len(report.tables)} tables rebuilt from ")
        assert any("registry.personal_data_access left out" in n for n in report.notes)

        conn = await asyncpg.connect(database)
        try:
            await conn.execute("UPDATE rectification.problems SET responsible_person = '他人(示例)' "
                               "WHERE problem_id = $1", world.closed_problem)
        finally:
            await conn.close()
        report = await replay_read_models(settings)
        assert not report.identical
        assert report.difference == (f"rectification.problems [problem_id={world.closed_problem}]: "
                                     "responsible_person differ(s) from the rebuilt row")
