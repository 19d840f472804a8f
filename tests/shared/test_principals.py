"""A district principal always has its unit: one without it would be scoped to nothing and shown
every unit by any query that forgot to check. Refused when a token is made and when loaded."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from services.cli import app
from shared.auth import TokenStore, hash_token
from shared.messages import Actor, Role

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("role", [Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER])
def test_a_district_role_without_a_unit_cannot_exist(role):
    with pytest.raises(ValidationError, match="acts for one reporting unit"):
        Actor(id="x", name="填报人(示例)", role=role)
    assert Actor(id="x", name="填报人(示例)", role=role, unit="echeng").scope == "echeng"


def test_a_city_role_has_no_unit_and_sees_the_whole_city():
    with pytest.raises(ValidationError, match="whole city"):
        Actor(id="x", name="检查员(示例)", role=Role.INSPECTOR, unit="echeng")
    assert Actor(id="x", name="检查员(示例)", role=Role.INSPECTOR).scope is None


def test_lookback_token_refuses_a_district_role_without_its_unit():
    result = CliRunner().invoke(app, ["token", "--id", "r1", "--name", "填报人(示例)",
                                      "--role", "district_reporter"])
    assert result.exit_code == 2 and "acts for one reporting unit" in result.output
    assert "token:" not in result.output
    made = CliRunner().invoke(app, ["token", "--id", "r1", "--name", "填报人(示例)",
                                    "--role", "district_reporter", "--unit", "echeng"])
    assert made.exit_code == 0 and made.output.startswith("token: lb_")


def test_a_tokens_file_with_a_unitless_district_principal_is_refused_whole(tmp_path):
    good = {hash_token("a"): {"id": "a", "name": "管理员(示例)", "role": "city_admin"}}
    bad = {hash_token("b"): {"id": "b", "name": "填报人(示例)", "role": "district_reviewer"}}
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({**good, **bad}), encoding="utf-8")
    with pytest.raises(ValueError, match=f"tokens entry {hash_token('b')[:8]}.*one reporting unit"):
        TokenStore.from_sources(file=tokens)
    assert len(TokenStore.from_mapping(good)) == 1
