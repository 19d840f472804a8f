"""No phone number, household name or address appears in any log line while households and
liaisons are registered, imported, refused, projected and revealed."""
from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from services.registry.importing import rows_to_xlsx
from tests.registry.support import household_body, liaison_body, projected, registry_client
from tests.registry.test_api_import import XLSX, household_row
from tests.support.actors import auth

pytestmark = pytest.mark.integration

SECRETS = ("王大明", "李小红", "赵铁柱", "滨湖社区(示例)8栋", "13800012345", "13900054321", "13700077777",
           "0711-0000123", "0000123", "13812340000")


async def test_no_phone_number_or_household_name_reaches_the_logs(database):
    with capture_logs() as logs:
        async with registry_client(database) as client:
            programme = (await client.post("/programmes", headers=auth("rep-echeng-1"), json={
                "unit": "echeng", "township": "凤凰街道", "year": 2022})).json()
            pid = programme["programme_id"]
            ok = await client.post(f"/programmes/{pid}/households", headers=auth("rep-echeng-1"), json={
                "programme_id": pid, "households": [
                    household_body("EC-L-001", name="王大明(示例)", phone="13800012345",
                                   address="滨湖社区(示例)8栋101")]})
            assert ok.status_code == 201
            refused = await client.post(f"/programmes/{pid}/households", headers=auth("rep-echeng-1"), json={
                "programme_id": pid, "households": [
                    household_body("EC-L-002", name="李小红(示例)", phone="1390005432"),  # one digit short
                    household_body("EC-L-001", name="王大明(示例)", phone="13800012345")]})
            assert refused.status_code == 422

            liaison = await client.post("/liaisons", headers=auth("rep-echeng-1"), json=liaison_body(
                mobile="13900054321", office_phone="0711-0000123"))
            assert liaison.status_code == 201
            bad_liaison = await client.post("/liaisons", headers=auth("rep-echeng-1"),
                                            json=liaison_body(mobile="1381234000"))
            assert bad_liaison.status_code == 422

            imported = await client.post("/imports", headers=auth("admin-1") | {"Content-Type": XLSX},
                                         content=rows_to_xlsx(households=[household_row(
                                             "EC-L-100", name="赵铁柱(示例)", phone="13700077777")]))
            assert imported.status_code == 201, imported.text
            bad_import = await client.post("/imports", headers=auth("admin-1") | {"Content-Type": XLSX},
                                           content=rows_to_xlsx(households=[household_row(
                                               "EC-L-101", name="赵铁柱(示例)", phone="13812340000x")]))
            assert bad_import.status_code == 422

            await projected(client, "/liaisons", lambda b: len(b["items"]) == 1)
            revealed = await client.get("/liaisons?reveal=true", headers=auth("rep-echeng-1"))
            assert revealed.json()["items"][0]["mobile"] == "13900054321"  # the answer has it; logs must not
            await projected(client, f"/programmes/{pid}/households", lambda b: b["total"] == 2)

    events = [line["event"] for line in logs]
    assert events.count("command_handled") >= 3
    assert any(line.get("command") == "ImportRegistry" for line in logs
               if line["event"] == "command_handled")
    assert "personal_data_revealed" in events and "message_handled" in events
    for line in logs:
        text = repr(line)
        for secret in SECRETS:
            assert secret not in text, (secret, line)
