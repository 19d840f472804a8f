"""`lookback demo`: the Ezhou 2024 campaign, played from its first day to its last in a few
minutes, on the embedded default in a fresh data folder.

One process: an embedded PostgreSQL of its own, the console and the four services on one
simulated clock (LOOKBACK_CLOCK=simulated:…), which the play (scenario.py) moves day by day
through the services' `POST /clock`. It shows a progress bar per phase and ends with each unit's
results, the files it wrote (monthly lists, the 抽查名单, calendars, the mails, the audit export)
and what `lookback audit verify` and `lookback audit replay` say of the log.
"""
from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.demo.scenario import START, Endpoints, Played, play, read_demo_tokens
from shared.audit_db import count_ledger, export_database
from shared.audit_file import read_checkpoint_dir, verify_file
from shared.audit_verify import VerifyResult
from shared.clock import clock_from_setting
from shared.logging import configure_logging
from shared.provisioning import AUDITOR
from shared.replay import ReplayReport
from shared.settings import Settings
from shared.signing import load_public_key, public_keys_by_id
from shared.store import login_dsn


@dataclass
class DemoResult:
    data_dir: Path
    played: Played
    mails: list[Path] = field(default_factory=list)
    audit_export: Path | None = None
    verify: VerifyResult | None = None
    replay: ReplayReport | None = None
    seconds: float = 0.0


class PhaseBars:
    """One progress bar per phase of the campaign (scenario.Progress)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def phase(self, name: str, days: int) -> None:
        self.task = self.progress.add_task(name, total=days, doing="")

    def day(self, moment: datetime, doing: str) -> None:
        self.progress.update(self.task, advance=1,
                             doing=f"{moment:%m-%d} {doing}"[:60] if doing else f"{moment:%m-%d}")


def free_port_base(count: int = 5) -> int:
    """A first port with `count` free ports after it (checked, not reserved)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count >= 65000:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports found")


async def run_demo(data_dir: Path, *, port_base: int | None = None,
                   console: Console | None = None) -> DemoResult:
    """Play the campaign in one process on a fresh embedded database in `data_dir`."""
    from services.system import (
        SERVICE_NAMES,
        migrate,
        one_process_apps,
        prepare_embedded,
        replay_read_models,
        seed_if_empty,
    )
    from shared.hosting import serve_apps

    console = console or Console(stderr=True)
    started = asyncio.get_running_loop().time()
    if (data_dir / "pgdata").exists():
        raise typer.BadParameter(f"{data_dir} already holds a database: the demo needs a fresh folder")
    settings = Settings(data_dir=data_dir, clock=f"simulated:{START.isoformat()}",
                        checkpoint_every_seconds=1.0, log_json=False, log_level="WARNING")
    configure_logging(json=False, level="WARNING")
    with console.status("准备嵌入式数据库与示例登记数据…"):
        settings = await prepare_embedded(settings)
        await migrate(settings)
        await seed_if_empty(settings, liaisons=False)   # 附件1 is filed during the play
    base = port_base or free_port_base(len(SERVICE_NAMES))
    ports = {name: base + i for i, name in enumerate(SERVICE_NAMES)}
    apps, urls = one_process_apps(settings, ports, clock_from_setting(settings.clock))
    out = data_dir / "out"
    out.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    outcome: dict[str, Any] = {}

    async def play_then_stop() -> None:
        try:
            tokens = read_demo_tokens(data_dir / "demo-tokens.txt")
            endpoints = Endpoints(urls["registry"], urls["rectification"], urls["inspection"],
                                  urls["notifier"], tokens)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TextColumn("{task.fields[doing]}"),
                          console=console) as bars:
                outcome["played"] = await play(endpoints, out_dir=out, progress=PhaseBars(bars))
            await asyncio.sleep(settings.checkpoint_every_seconds * 3)  # a checkpoint covers all
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            stop.set()

    tasks: set[asyncio.Task[None]] = set()

    def ready(_: Any) -> None:
        task = asyncio.get_running_loop().create_task(play_then_stop())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await serve_apps(apps, settings, ports, on_ready=ready, stop=stop)
    if "error" in outcome:
        raise outcome["error"]
    result = DemoResult(data_dir=data_dir, played=outcome["played"])
    result.mails = sorted((data_dir / "mail").glob("*.eml"))
    with console.status("导出审计日志并独立验证，从日志重建读模型…"):
        result.audit_export = out / "audit-export.jsonl"
        await export_audit(settings, result.audit_export)
        result.verify = verify_export(settings, result.audit_export)
        result.replay = await replay_read_models(settings)
    result.seconds = asyncio.get_running_loop().time() - started
    return result


async def export_audit(settings: Settings, path: Path) -> int:
    """`lookback audit export`, as the auditor's role."""
    import asyncpg

    assert settings.database_url is not None
    conn = await asyncpg.connect(login_dsn(settings.database_url, AUDITOR,
                                           settings.database_password(AUDITOR)))
    try:
        await count_ledger(conn)
        with open(path, "wb") as handle:
            entries, _ = await export_database(conn, handle)
        return entries
    finally:
        await conn.close()


def verify_export(settings: Settings, path: Path) -> VerifyResult:
    """`lookback audit verify <export> --public-key … --checkpoint-dir …`: as an outsider would."""
    keys = public_keys_by_id([load_public_key(str(settings.data_dir / "keys" / "checkpoint.pub"))])
    checkpoints = sorted(read_checkpoint_dir(settings.resolved_checkpoint_dir()),
                         key=lambda item: (item[1]["tree_size"] or 0, item[0]))
    return verify_file(path, keys, checkpoints)


def print_summary(result: DemoResult, console: Console) -> None:
    board = result.played.board
    table = Table(title=f"“回头看”活动结果(截至 {board.get('as_of', '')})")
    for column in ("排名", "单位", "问题数", "已销号", "销号率", "逾期", "反弹", "迟报/未报", "得分"):
        table.add_column(column, justify="left" if column == "单位" else "right")
    for row in board.get("board", []):
        p = row["progress"]
        table.add_row(str(row["rank"]), row["unit_name"], str(p["registered"] - p["withdrawn"]),
                      str(p["closed"]), f"{row['closure_rate']} ({row['closure_percent']}%)"
                      if row.get("closure_percent") not in (None, "None") else row["closure_rate"],
                      str(p["overdue"]), str(p["reopened"]),
                      f"{p['late_reports']}/{p['missing_reports']}", str(row["score"]))
    console.print(table)
    played = result.played
    console.print(f"提醒与催办已发送 {played.reminders_sent} 封；模拟了 {played.days} 个活动日，"
                  f"用时 {result.seconds:.0f} 秒。")
    lines = [("月度问题清单 (.xlsx)", played.monthly_lists), ("抽查名单 (.xlsx)", played.draw_lists),
             ("日历 (.ics)", played.calendars)]
    for label, paths in lines:
        console.print(f"{label}:")
        for path in paths:
            console.print(f"  {path}")
    console.print(f"邮件 (.eml): {len(result.mails)} 封，在 {result.data_dir / 'mail'}")
    console.print(f"审计导出: {result.audit_export}")
    if result.verify is not None:
        console.print(f"audit verify: {result.verify.summary()}")
    if result.replay is not None:
        console.print(f"audit replay: {result.replay.summary()}")
    console.print(f"数据目录: {result.data_dir}（嵌入式数据库、签名检查点、演示令牌）")


def demo_command(data_dir: Path | None, port_base: int | None, as_json: bool) -> None:
    """`lookback demo` (services/cli.py): play, print the results, exit 1 unless the log
    verifies and replays identically."""
    folder = data_dir or Path("var") / f"demo-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    console = Console()
    result = asyncio.run(run_demo(folder.resolve(), port_base=port_base, console=console))
    print_summary(result, console)
    if as_json:
        typer.echo(json.dumps(summary_json(result), ensure_ascii=False))
    ok = result.verify is not None and result.verify.ok and result.replay is not None \
        and result.replay.identical
    if not ok:
        raise typer.Exit(1)


def summary_json(result: DemoResult) -> dict[str, Any]:
    played = result.played
    return {"data_dir": str(result.data_dir), "seconds": round(result.seconds, 1),
            "board": played.board.get("board", []), "reminders_sent": played.reminders_sent,
            "monthly_lists": [str(p) for p in played.monthly_lists],
            "draw_lists": [str(p) for p in played.draw_lists],
            "calendars": [str(p) for p in played.calendars],
            "mails": len(result.mails), "audit_export": str(result.audit_export),
            "play_seconds": played.seconds,
            "verify_ok": bool(result.verify and result.verify.ok),
            "replay_identical": bool(result.replay and result.replay.identical)}
