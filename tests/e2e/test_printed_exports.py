"""The exports people print, printed: the 抽查名单 and 附件1 of the sample data (registry/seed.py),
served by the real services, rendered by LibreOffice, read back page by page (tests/paper.py).

The first page of each lands in `var/prints/` (or LOOKBACK_PRINTS_DIR) for a person to look at."""
from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from services.inspection.app import create_app as inspection_app
from services.registry import commands as c
from services.registry.app import create_app as registry_app
from services.registry.seed import build_seed
from services.registry.seeding import seed_if_empty
from shared.auth import hash_token
from shared.campaign import load_campaign
from shared.messages import Actor, Role
from shared.settings import Settings
from tests.faults import eventually
from tests.paper import render
from tests.shared.test_bus import running

pytestmark = pytest.mark.integration

CST = ZoneInfo("Asia/Shanghai")
CAMPAIGN = load_campaign()
ACTORS = {
    "admin": Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN),
    "inspector": Actor(id="insp-1", name="检查员(示例)", role=Role.INSPECTOR),
    "reporter": Actor(id="ec-r", name="鄂城填报人(示例)", role=Role.DISTRICT_REPORTER, unit="echeng"),
}
TOKENS_JSON = json.dumps({hash_token(f"tok-{who}"): a.model_dump(mode="json")
                          for who, a in ACTORS.items()})
DRAW_ID = "ezhou-2024-sample"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MASKED = re.compile(r"1\d{2}\*{4}\d{4}")
CLEAR_MOBILE = re.compile(r"(?<!\d)1\d{10}(?!\d)")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 7, 9, 0, tzinfo=CST)

    def __call__(self) -> datetime:
        return self.now


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{who}"}


@asynccontextmanager
async def sample_system(dsn: str, tmp: Path, clock: Clock
                        ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The registry with the sample data, and the inspection service that has seen all of it."""
    settings = Settings(database_url=dsn, tokens_json=TOKENS_JSON, poll_interval=0.02,
                        graceful_timeout=5.0, data_dir=tmp, checkpoint_dir=tmp / "checkpoints")
    assert await seed_if_empty(settings) is not None
    plan = build_seed(CAMPAIGN)
    places = sum(isinstance(cmd, (c.RegisterProject, c.RegisterAdaptationProgramme))
                 for cmd in plan.commands)
    registry = registry_app(settings, clock=clock)
    inspection = inspection_app(settings.model_copy(update={"run_sequencer": False}), clock=clock)
    async with running(registry) as reg, running(inspection) as insp:
        async def seen_all() -> bool:
            rows = (await insp.get("/registry-view/projects", headers=auth("inspector"))).json()
            return len(rows) >= places
        await eventually(seen_all, timeout=60, what=f"{places} sample projects in inspection's view")
        yield reg, insp


async def draw(insp: httpx.AsyncClient, clock: Clock) -> dict[str, Any]:
    async def post(path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
        response = await insp.post(path, json=body, headers=auth("inspector"))
        assert response.status_code == status, response.text
        return response.json()

    await post("/draws", {"draw_id": DRAW_ID, "title": "2024年回头看市级抽查(示例)"}, 201)
    await post(f"/draws/{DRAW_ID}/entropy-commitment", {
        "draw_id": DRAW_ID, "statement": "中国福利彩票3D 2024-05-08 开奖号码",
        "not_before": (clock.now + timedelta(days=1)).isoformat()}, 200)
    clock.now = datetime(2024, 5, 8, 22, 0, tzinfo=CST)
    return await post(f"/draws/{DRAW_ID}/entropy-reveal",
                      {"draw_id": DRAW_ID, "entropy": "福彩3D 2024-05-08: 3 7 1"}, 200)


async def test_the_sample_draw_list_prints_landscape_with_names_dates_and_the_digest_on_every_page(
        database, tmp_path):
    clock = Clock()
    async with sample_system(database, tmp_path, clock) as (_, insp):
        summary = await draw(insp, clock)
        exports = {"chouchamingdan": (await insp.get(f"/draws/{DRAW_ID}/list.xlsx",
                                                     headers=auth("inspector"))).content}
        for unit in CAMPAIGN.unit_codes:
            response = await insp.get(f"/draws/{DRAW_ID}/list.xlsx", params={"unit": unit},
                                      headers=auth("inspector"))
            assert response.status_code == 200, response.text
            exports[f"chouchamingdan-{unit}"] = response.content
        doc = (await insp.get(f"/draws/{DRAW_ID}/list", headers=auth("inspector"))).json()

    printed = render(exports, tmp_path / "print")
    whole = printed["chouchamingdan"]
    per_unit = {unit: printed[f"chouchamingdan-{unit}"].pages for unit in CAMPAIGN.unit_codes}
    print(f"抽查名单 of the sample data: {whole.pages} pages; per unit {per_unit}")
    assert whole.all_a4(landscape=True)
    # Fitted to the width, a unit's list is one or two pages, never columns split off.
    assert all(1 <= pages <= 2 for pages in per_unit.values()), per_unit
    assert whole.pages == sum(per_unit.values())
    for number, text in enumerate(whole.texts, start=1):
        assert doc["frames_digest"] in text, f"page {number} lacks the frames digest"
        assert DRAW_ID in text
        assert "抽查名单" in text                                  # the title, repeated
        assert not UUID.search(text), f"page {number} prints an internal id"
        assert "echeng" not in text and "/canteen" not in text
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", text), "a raw ISO timestamp"
    everything = "\n".join(whole.texts)
    assert "2024年5月8日 22:00" in everything and "鄂城区民政局" in everything
    picked = [doc["labels"]["projects"][pid]["name"] for record in doc["strata"]
              if record["rule"] != "R3" for pid in record["picks"]]
    assert picked and all(name in everything for name in picked)
    assert summary["stage"] == "drawn"


async def test_the_liaison_list_prints_the_notices_form_one_portrait_page_per_unit(
        database, tmp_path):
    clock = Clock()
    async with sample_system(database, tmp_path, clock) as (reg, _):
        masked = await reg.get("/liaisons.xlsx", headers=auth("admin"))
        assert masked.status_code == 200, masked.text
        refused = await reg.get("/liaisons.xlsx", params={"reveal": "true"},
                                headers=auth("inspector"))
        assert refused.status_code == 403
        revealed = await reg.get("/liaisons.xlsx", params={"reveal": "true"},
                                 headers=auth("reporter"))
        assert revealed.status_code == 200, revealed.text
        reveals = await _reveals(database)

    printed = render({"fujian1": masked.content, "fujian1-echeng-revealed": revealed.content},
                     tmp_path / "print")
    form = printed["fujian1"]
    print(f"附件1 of the sample data: {form.pages} pages")
    assert form.all_a4(landscape=False)
    assert form.pages == len(CAMPAIGN.units)
    for unit, text in zip(CAMPAIGN.units, form.texts, strict=True):
        assert "附件1" in text and "责任领导和联络员登记表" in text
        assert f"填报单位：{unit.name}" in text
        for label in ("姓名", "性别", "职务", "办公电话", "手机号码", "责任领导", "联络员"):
            assert label in text
        assert MASKED.search(text) and not CLEAR_MOBILE.search(text)
    echeng = printed["fujian1-echeng-revealed"]
    assert echeng.pages == 1 and "填报单位：鄂城区民政局" in echeng.texts[0]
    assert CLEAR_MOBILE.search(echeng.texts[0]) and "妥善保管" in echeng.texts[0]
    # The export's reveal is recorded as the JSON reveal is: who, which unit, which fields.
    assert [(r["actor_id"], r["unit"], r["what"], list(r["fields"])) for r in reveals] == [
        ("ec-r", "echeng", "liaison_phones", ["mobile", "office_phone"])]


async def test_text_that_looks_like_a_formula_prints_as_typed(database, tmp_path):
    clock = Clock()
    settings = Settings(database_url=database, tokens_json=TOKENS_JSON, poll_interval=0.02,
                        graceful_timeout=5.0, data_dir=tmp_path)
    async with running(registry_app(settings, clock=clock)) as reg:
        for role, name in (("leader", "=2+3"), ("liaison", "@SUM(1,2)")):
            response = await reg.post("/liaisons", headers=auth("admin"), json={
                "unit": "echeng", "role": role, "name": name, "gender": "female",
                "position": "-科长+", "mobile": "13800009876"})
            assert response.status_code == 201, response.text
        token = response.headers["X-Lookback-Token"]
        export = await reg.get("/liaisons.xlsx", params={"unit": "echeng"},
                               headers={**auth("admin"), "X-Lookback-After": token})
    [text] = render({"fujian1-formulas": export.content}, tmp_path / "print")[
        "fujian1-formulas"].texts
    leader = next(line for line in text.splitlines() if "责任领导" in line and "科长" in line)
    liaison = next(line for line in text.splitlines() if "联络员" in line and "科长" in line)
    assert "=2+3" in leader and "-科长+" in leader and "@SUM(1,2)" in liaison
    assert not re.search(r"\b[35]\b", leader.replace("=2+3", ""))    # never computed


async def _reveals(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT * FROM registry.personal_data_access ORDER BY accessed_at")
    finally:
        await conn.close()
