"""`lookback demo` as a newcomer runs it: the Ezhou 2024 campaign played through the services' HTTP
APIs on a simulated clock, in one process on a fresh embedded database, ending with each unit's
results and the files people would get (services/demo)."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import icalendar
import openpyxl
import pytest

from services.demo import scenario
from tests.e2e.test_embedded_up import LOOKBACK
from tests.support.services import child_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A folder the embedded PostgreSQL can reach by its absolute path: run as root, pgserver runs
    the server as its own user, which pytest's private (0700) temporary folders shut out (the
    replay's DROP DATABASE checkpoints by absolute path, and the server would stop there)."""
    folder = Path(tempfile.mkdtemp(prefix="lookback-demo-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_demo_plays_the_campaign_and_prints_each_units_results_and_its_files(data_root):
    tmp_path = data_root
    began = time.monotonic()
    run = subprocess.run([LOOKBACK, "demo", "--data-dir", str(tmp_path / "demo"), "--json"],
                         env=child_env(broker=False, LOOKBACK_LOG_JSON="false"),
                         capture_output=True, text=True, timeout=540)
    print(f"lookback demo took {time.monotonic() - began:.0f} s")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    for words in ("“回头看”活动结果", "月度问题清单", "抽查名单", "audit verify: OK",
                  "audit replay: identical"):
        assert words in run.stdout

    # The board on 06-01 follows from the plot (scenario.py), rule by rule.
    board = {row["unit"]: row for row in summary["board"]}
    assert set(board) == set(scenario.UNITS)
    rules = {unit: sorted(d["rule_id"] for d in row["deductions"]) for unit, row in board.items()}
    assert rules == {
        "echeng": [],
        "huarong": ["late_submission"],                      # the March list, two days late
        "linkong": ["late_submission"],                      # 附件1, two days late
        "liangzihu": ["item_reopened"],                      # 反弹
        "gedian": ["item_open_at_rectification_deadline",    # its 台账 item open on 05-07
                   "missing_typical_case"]}
    assert [board[u]["score"] for u in scenario.UNITS] == ["100", "99", "99", "97.5", "99"]
    assert board["huarong"]["progress"]["overdue"] == 1      # the city-found item left open
    assert board["liangzihu"]["progress"]["reopened"] == 1
    assert board["echeng"]["closure_rate"] == f"{board['echeng']['closure_counted']}/" \
                                              f"{board['echeng']['closure_counted']}"

    # Ten monthly lists (five units, March and April), each the 附件2 layout with the unit's items.
    lists = [Path(p) for p in summary["monthly_lists"]]
    assert len(lists) == 10 and all(p.exists() for p in lists)
    sheet = openpyxl.load_workbook(next(p for p in lists if p.name ==
                                        "echeng-monthly_list-2024-04.xlsx")).worksheets[0]
    rows = [row for row in sheet.iter_rows(values_only=True) if isinstance(row[0], int)]
    header = next(row for row in sheet.iter_rows(values_only=True) if row[0] == "序号")
    assert header[:7] == ("序号", "区域", "项目名称", "项目年份", "存在的问题隐患", "整改限期", "责任人")
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    problems = [r[4] for r in rows]
    assert "(示例)消防器材过期未更换" in problems and "(示例)助餐服务台账记录不全，未按月公示" in problems
    assert any(p.startswith("列入台账") for p in problems)    # the items the 台账 opened itself

    [draw_list] = [Path(p) for p in summary["draw_lists"]]
    titles = openpyxl.load_workbook(draw_list).sheetnames
    assert titles == ["鄂城区", "华容区", "梁子湖区", "葛店经开区", "临空经济区"]

    calendars = [Path(p) for p in summary["calendars"]]
    assert len(calendars) == len(scenario.UNITS)
    for path in calendars:
        events = icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT")
        assert events and any("附件1" in str(e.get("SUMMARY")) for e in events)

    mails = sorted((tmp_path / "demo" / "mail").glob("*.eml"))
    assert summary["reminders_sent"] > 0 and len(mails) == summary["mails"] == summary["reminders_sent"]
    assert Path(summary["audit_export"]).stat().st_size > 0
    assert summary["verify_ok"] and summary["replay_identical"]


def test_the_demo_refuses_a_data_folder_that_already_holds_a_database(tmp_path):
    (tmp_path / "demo" / "pgdata").mkdir(parents=True)
    run = subprocess.run([LOOKBACK, "demo", "--data-dir", str(tmp_path / "demo")],
                         env=child_env(broker=False), capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "fresh folder" in run.stdout + run.stderr
    assert list((tmp_path / "demo" / "pgdata").iterdir()) == []
