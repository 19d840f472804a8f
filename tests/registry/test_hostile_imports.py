"""Spreadsheet bombs against the registry's import, and the isolation that contains them: each ends
in a clear 422 naming the file's problem, nothing written, and the service answering meanwhile."""
from __future__ import annotations

import asyncio
import io
import re
import zipfile

import pytest

from services.registry.importing import rows_to_xlsx
from services.registry.importing.parsing import MAX_ROWS_PER_SHEET
from shared.isolation import IsolatedWorkRefused, Limits, run_isolated
from tests.registry.support import as_, registry_client, registry_event_count
from tests.registry.test_api_import import HOUSEHOLD_ROWS

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def patched(workbook: bytes, member_suffix: str, patch) -> bytes:
    """The workbook with one member's XML rewritten by `patch` (a real, valid zip)."""
    source = zipfile.ZipFile(io.BytesIO(workbook))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith(member_suffix):
                data = patch(data)
            target.writestr(item, data)
    return out.getvalue()


def declared_everything() -> bytes:
    """A small workbook whose households sheet declares A1:XFD1048576 (16,384 columns by
    1,048,576 rows) while it holds one data row."""
    base = rows_to_xlsx(households=HOUSEHOLD_ROWS[:1])
    return patched(base, "sheet2.xml", lambda xml: re.sub(
        rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', xml))


def one_huge_string() -> bytes:
    """A cell of 210 MB that deflates to a few hundred kilobytes."""
    base = rows_to_xlsx(households=HOUSEHOLD_ROWS[:1])
    huge = "王".encode() * (70 * 1024 * 1024)
    return patched(base, "sheet2.xml", lambda xml: xml.replace(
        b"</sheetData>", b'<row r="3"><c r="A3" t="inlineStr"><is><t>' + huge
        + b"</t></is></c></row></sheetData>"))


def too_many_rows() -> bytes:
    """200,000 data rows, written straight into the sheet's XML (fast to make, small zipped)."""
    base = rows_to_xlsx(households=HOUSEHOLD_ROWS[:1])
    extra = b"".join(b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>x</t></is></c></row>' % (n, n)
                     for n in range(3, 200_003))
    return patched(base, "sheet2.xml", lambda xml: xml.replace(b"</sheetData>", extra + b"</sheetData>"))


@pytest.mark.integration
@pytest.mark.parametrize("bomb,reason", [
    (declared_everything, None),  # ignored: the rows that exist are read, and they are fine
    (one_huge_string, "unpacks to"),
    (too_many_rows, f"more than {MAX_ROWS_PER_SHEET} rows"),
])
async def test_a_spreadsheet_bomb_is_answered_clearly_and_the_service_stays_responsive(
        database, bomb, reason):
    data = bomb()
    async with registry_client(database) as client:
        upload = asyncio.create_task(client.post("/imports", content=data,
                                                 headers=as_("admin") | {"Content-Type": XLSX}))
        health = await client.get("/healthz")  # the event loop is not the parser's
        assert health.status_code == 200
        answer = await upload
        if reason is None:
            assert answer.status_code == 201, answer.text
        else:
            assert answer.status_code == 422, answer.text
            assert reason in answer.text
            assert len(answer.content) < 100_000  # at most 200 rows listed: never as big as the input
            assert await registry_event_count(database) == 0


def allocate_forever() -> int:
    blocks = []
    while True:
        blocks.append(bytearray(64 * 1024 * 1024))


def spin_forever() -> None:
    while True:
        pass


def add(a: int, b: int, *, times: int = 1) -> int:
    return (a + b) * times


@pytest.mark.unit
async def test_isolated_work_past_its_memory_or_time_bound_is_killed_and_refused():
    assert await run_isolated(add, 2, 3, times=2) == 10
    with pytest.raises(IsolatedWorkRefused) as memory:
        await run_isolated(allocate_forever, limits=Limits(memory_bytes=256 * 1024 * 1024))
    assert memory.value.reason in ("memory", "killed")
    with pytest.raises(IsolatedWorkRefused) as spinning:
        await run_isolated(spin_forever, limits=Limits(seconds=1, cpu_seconds=1))
    assert spinning.value.reason in ("timeout", "killed")
