"""Event store benchmark: raw asyncpg baselines and our append, sequencer and verifier, one run.

    python bench/store_bench.py [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
                                [--seconds 5] [--repeat 3] [--verify-events 200000] [--cases ...]

Everything runs against the same server in databases this script creates and drops:

  raw-1      raw asyncpg: single-row INSERT into a plain table, 1 connection
  raw-8      the same, 8 connections
  append-1   our append (PostgresEventStore.append, as a service role under row security), one
             event per transaction, 1 writer
  append-8   the same, 8 writers on different streams
  batch-100  our append, 100 events per call
  sequencer  the sequencer in its own process while 8 writers append: events/s sequenced, and
             the lag when the writers stop (unsequenced events, age of the oldest, time to drain)
  verify     200,000 events (--verify-events): sequencing the backlog, `audit verify` from the
             database and from an export file, events/s

The timed append cases run --repeat times, interleaved, and report the median. It prints one
table with the ratios to the raw baselines and the targets of issue 2.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.audit_db import export_database, verify_database  # noqa: E402
from shared.audit_file import verify_file  # noqa: E402
from shared.messages import NewEvent  # noqa: E402
from shared.migrations import migrate  # noqa: E402
from shared.sequencer import Sequencer, unsequenced_age_seconds, unsequenced_count  # noqa: E402
from shared.signing import (CheckpointSigner, generate_private_key, load_private_key,  # noqa: E402
                            private_key_to_text, public_keys_by_id)
from shared.store import NO_STREAM, PostgresEventStore, create_pool  # noqa: E402

ALL_CASES = ["raw-1", "raw-8", "append-1", "append-8", "batch-100", "sequencer", "verify"]
SERVICE_ROLE = "lookback_example"  # owns the `example-` stream category
EVENT_TYPE = "example.ProjectRegistered"
RAW_TABLE = """
CREATE TABLE bench_raw (
    id             bigserial PRIMARY KEY,
    stream_id      text   NOT NULL,
    stream_version bigint NOT NULL,
    event_id       uuid   NOT NULL UNIQUE,
    event_type     text   NOT NULL,
    payload        jsonb  NOT NULL,
    metadata       jsonb  NOT NULL)"""
RAW_INSERT = ("INSERT INTO bench_raw (stream_id, stream_version, event_id, event_type, payload, "
              "metadata) VALUES ($1, $2, $3, $4, $5, $6)")


# ---------------------------------------------------------------------------------------------
# Events shaped like the project's (a payload of ~250 bytes, metadata as new_event writes it)


def make_event(stream_id: str, n: int) -> NewEvent:
    event_id = uuid.uuid4()
    payload = {"project_id": f"p-{n}", "name": f"适老化改造项目 第{n}号", "district": "鄂城区",
               "street": "凤凰街道", "budget": "125000.00", "households": n % 40,
               "kind": "home_adaptation", "registered_on": "2024-03-04",
               "note": "住户已签字确认, 施工单位已进场"}
    metadata = {"event_id": str(event_id), "event_type": EVENT_TYPE, "schema_version": 1,
                "correlation_id": str(event_id), "causation_id": None,
                "actor": {"id": "u-1029", "name": "张三", "role": "city_admin", "unit": "民政局"},
                "occurred_at": "2024-03-04T08:00:00+00:00"}
    return NewEvent(stream_id, event_id, EVENT_TYPE, 1, payload, metadata)


# ---------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Figure:
    case: str
    rate: float  # per second
    unit: str = "events/s"
    latencies: list[float] = field(default_factory=list)
    note: str = ""

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def timed_writers(writers: int, seconds: float,
                        op: Callable[[int, int], Awaitable[int]]) -> tuple[float, list[float]]:
    """Run `op(writer, i)` in a loop on each writer for `seconds`; return (events/s, latencies)."""
    latencies: list[float] = []
    counts = [0] * writers
    deadline = time.perf_counter() + seconds

    async def loop(w: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            counts[w] += await op(w, i)
            latencies.append(time.perf_counter() - started)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(writers)))
    return sum(counts) / (time.perf_counter() - started), latencies


async def raw_case(dsn: str, writers: int, seconds: float) -> Figure:
    pool = await asyncpg.create_pool(dsn, min_size=writers, max_size=writers)
    conns = [await pool.acquire() for _ in range(writers)]
    try:
        async def op(w: int, i: int) -> int:
            event = make_event(f"example-raw{w}-{i % 100}", i)
            await conns[w].execute(RAW_INSERT, event.stream_id, i, event.event_id, event.event_type,
                                   json.dumps(event.payload, ensure_ascii=False),
                                   json.dumps(event.metadata, ensure_ascii=False))
            return 1
        for w in range(writers):  # warm up (prepared statement, caches)
            for i in range(50):
                await op(w, -i - 1)
        rate, latencies = await timed_writers(writers, seconds, op)
    finally:
        for conn in conns:
            await pool.release(conn)
        await pool.close()
    return Figure(f"raw-{writers}", rate, latencies=latencies)


async def append_case(dsn: str, writers: int, seconds: float, per_call: int = 1,
                      tag: str = "") -> Figure:
    pool = await create_pool(dsn, role=SERVICE_ROLE, min_size=writers, max_size=writers)
    store = PostgresEventStore(pool)
    conns = [await pool.acquire() for _ in range(writers)]
    versions: dict[str, int] = {}
    run = uuid.uuid4().hex[:6]
    try:
        async def op(w: int, i: int) -> int:
            if per_call == 1:
                # one event per transaction, cycling over 100 streams per writer, each append
                # with its exact expected version (the usual command path)
                stream = f"example-{run}{tag}w{w}-{i % 100}"
                expected = versions.get(stream, NO_STREAM)
                await store.append([make_event(stream, i)], {stream: expected}, conn=conns[w])
                versions[stream] = expected + 1
                return 1
            stream = f"example-{run}{tag}b{w}-{i}"
            await store.append([make_event(stream, k) for k in range(per_call)], {stream: NO_STREAM},
                               conn=conns[w])
            return per_call
        for w in range(writers):
            for i in range(20):
                await op(w, 1_000_000 + i)
        rate, latencies = await timed_writers(writers, seconds, op)
    finally:
        for conn in conns:
            await pool.release(conn)
        await pool.close()
    name = f"batch-{per_call}" if per_call > 1 else f"append-{writers}"
    return Figure(name, rate, latencies=latencies)


# ---------------------------------------------------------------------------------------------
# The sequencer in its own process, as in a deployment


def _sequencer_process(dsn: str, key_text: str, folder: str, stop: Any, ready: Any) -> None:
    async def main() -> None:
        sequencer = Sequencer(dsn, CheckpointSigner(load_private_key(key_text)), folder,
                              checkpoint_every_events=1000, checkpoint_every_seconds=1.0,
                              batch_size=2000, role="lookback_sequencer", poll_interval=0.01)
        stop_event = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.02)
            stop_event.set()

        watcher = asyncio.create_task(watch())
        ready.set()
        await sequencer.run(stop_event)
        await watcher

    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(main())


async def ledger_size(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT tree_size FROM es.sequencer_state")


async def sequencer_case(dsn: str, seconds: float, key_text: str, folder: str) -> list[Figure]:
    context = multiprocessing.get_context("spawn")
    stop, ready = context.Event(), context.Event()
    process = context.Process(target=_sequencer_process, args=(dsn, key_text, folder, stop, ready))
    conn = await asyncpg.connect(dsn)
    figures = []
    try:
        backlog = await unsequenced_count(conn)
        process.start()
        await asyncio.get_running_loop().run_in_executor(None, ready.wait)
        started = time.perf_counter()
        while await unsequenced_count(conn):
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        figures.append(Figure("sequencer catch-up", backlog / elapsed,
                              note=f"{backlog} events of backlog from the cases above, incl. start-up"))
        before = await ledger_size(conn)
        samples: list[tuple[int, float]] = []
        sampling = asyncio.Event()

        async def sample() -> None:  # the lag every 100 ms while the writers run
            probe = await asyncpg.connect(dsn)
            try:
                while not sampling.is_set():
                    samples.append((await unsequenced_count(probe),
                                    await unsequenced_age_seconds(probe)))
                    await asyncio.sleep(0.1)
            finally:
                await probe.close()

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        writers = await append_case(dsn, 8, seconds, tag="s")
        window = time.perf_counter() - started
        lag_events = await unsequenced_count(conn)
        lag_age = await unsequenced_age_seconds(conn)
        stopped = time.perf_counter()
        while await unsequenced_count(conn):
            await asyncio.sleep(0.005)
        drain = time.perf_counter() - stopped
        sampling.set()
        await sampler
        sequenced = await ledger_size(conn) - before
        figures.append(Figure("sequencer under 8 writers", sequenced / (window + drain),
                              note=f"writers appended {writers.rate:,.0f}/s meanwhile"))
        figures.append(Figure("sequencer lag at the end", lag_age, unit="s",
                              note=f"{lag_events} unsequenced when the writers stopped, "
                                   f"drained in {drain * 1000:.0f} ms"))
        worst = max(samples, key=lambda s: s[1], default=(0, 0.0))
        figures.append(Figure("sequencer lag, worst sample", worst[1], unit="s",
                              note=f"{worst[0]} unsequenced then; sampled every 100 ms while "
                                   "the 8 writers ran"))
    finally:
        stop.set()
        await asyncio.get_running_loop().run_in_executor(None, process.join, 30)
        if process.is_alive():
            process.kill()
        await conn.close()
    return figures


# ---------------------------------------------------------------------------------------------
# Verify over N events


async def fill(dsn: str, events: int, writers: int = 4, per_call: int = 100) -> None:
    pool = await create_pool(dsn, role=SERVICE_ROLE, min_size=writers, max_size=writers)
    store = PostgresEventStore(pool)
    calls = events // per_call

    async def writer(w: int) -> None:
        for c in range(w, calls, writers):
            stream = f"example-v{c}"
            await store.append([make_event(stream, k) for k in range(per_call)], {stream: NO_STREAM})

    try:
        await asyncio.gather(*(writer(w) for w in range(writers)))
    finally:
        await pool.close()


async def verify_case(admin: asyncpg.Connection, base_dsn: str, name: str, events: int,
                      workers: int | None) -> list[Figure]:
    key = generate_private_key()
    signer = CheckpointSigner(key)
    keys = public_keys_by_id([key.public_key()])
    figures = []
    folder = tempfile.mkdtemp(prefix="lookback-bench-checkpoints-")
    dsn = await create_database(admin, base_dsn, name)
    try:
        started = time.perf_counter()
        await fill(dsn, events)
        figures.append(Figure("fill (batch-100, 4 writers)", events / (time.perf_counter() - started),
                              note="set-up of the verify data"))
        sequencer = Sequencer(dsn, signer, folder, checkpoint_every_events=1000, batch_size=5000,
                              role="lookback_sequencer")
        started = time.perf_counter()
        while await sequencer.run_once():
            pass
        figures.append(Figure("sequencer on a backlog", events / (time.perf_counter() - started),
                              note=f"{events} events, in-process, batches of 5000"))
        await sequencer.close()
        conn = await asyncpg.connect(dsn)
        try:
            for label, count in (("verify from the database", workers), ("  same, one process", 1)):
                started = time.perf_counter()
                result, _ = await verify_database(conn, keys, workers=count, dsn=dsn)
                elapsed = time.perf_counter() - started
                assert result.ok and result.entries == events, result.summary()
                figures.append(Figure(label, events / elapsed, note=f"{result.checkpoints} signatures"))
            path = Path(folder) / "export.jsonl"
            started = time.perf_counter()
            with open(path, "wb") as out:
                await export_database(conn, out)
            figures.append(Figure("export to a file", events / (time.perf_counter() - started),
                                  note=f"{path.stat().st_size / 1e6:.0f} MB"))
        finally:
            await conn.close()
        loop = asyncio.get_running_loop()
        for label, count in (("verify an export file", workers), ("  same, one process", 1)):
            started = time.perf_counter()
            result = await loop.run_in_executor(None, lambda c=count: verify_file(path, keys, workers=c))
            elapsed = time.perf_counter() - started
            assert result.ok and result.entries == events, result.summary()
            figures.append(Figure(label, events / elapsed))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        await drop_database(admin, name)
    return figures


# ---------------------------------------------------------------------------------------------


async def create_database(admin: asyncpg.Connection, base_dsn: str, name: str) -> str:
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = base_dsn.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(RAW_TABLE)
    finally:
        await conn.close()
    return dsn


async def drop_database(admin: asyncpg.Connection, name: str) -> None:
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fmt_rate(value: float, unit: str) -> str:
    return f"{value:.3f}" if unit == "s" else f"{value:,.0f}"


def print_table(figures: dict[str, Figure], extra: list[Figure]) -> None:
    def ratio(a: str, b: str) -> str:
        if a in figures and b in figures and figures[b].rate:
            return f"{figures[a].rate / figures[b].rate:.2f}x {b}"
        return ""

    targets = {
        "append-1": (ratio("append-1", "raw-1"), ">= 0.8x raw-1",
                     lambda: figures["append-1"].rate >= 0.8 * figures["raw-1"].rate),
        "append-8": (f"{ratio('append-8', 'raw-8')}; {ratio('append-8', 'append-1')}",
                     ">= 0.8x raw-8 and >= 3x append-1",
                     lambda: figures["append-8"].rate >= 0.8 * figures["raw-8"].rate
                     and figures["append-8"].rate >= 3 * figures["append-1"].rate),
        "raw-8": (ratio("raw-8", "raw-1"), "", None),
        "batch-100": (ratio("batch-100", "raw-1"), "", None),
    }
    rows = [("case", "rate", "p50 ms", "p99 ms", "ratio", "target", "met", "note")]
    for figure in list(figures.values()) + extra:
        rel, target, check = targets.get(figure.case, ("", "", None))
        if figure.case.startswith("sequencer lag"):
            target, check = "< 1 s", (lambda f=figure: f.rate < 1.0)
        if figure.case.startswith("verify"):
            target, check = ">= 40,000 events/s", (lambda f=figure: f.rate >= 40_000)
        met = ""
        if check is not None:
            try:
                met = "yes" if check() else "NO"
            except KeyError:
                met = "?"
        p50, p99 = figure.percentile(0.5), figure.percentile(0.99)
        rows.append((figure.case, f"{fmt_rate(figure.rate, figure.unit)} {figure.unit}",
                     f"{p50:.2f}" if p50 is not None else "", f"{p99:.2f}" if p99 is not None else "",
                     rel, target, met, figure.note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


async def main(args: argparse.Namespace) -> None:
    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    admin = await asyncpg.connect(args.dsn)
    name = f"lookback_bench_{os.getpid()}"
    figures: dict[str, Figure] = {}
    extra: list[Figure] = []
    cases = args.cases or ALL_CASES
    try:
        dsn = await create_database(admin, args.dsn, name)
        version = admin.get_server_version()
        print(f"# PostgreSQL {version.major}.{version.micro}, {os.cpu_count()} CPUs, "
              f"{args.seconds:g} s per timed case x {args.repeat}, load average before: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        timed = {"raw-1": lambda: raw_case(dsn, 1, args.seconds),
                 "raw-8": lambda: raw_case(dsn, 8, args.seconds),
                 "append-1": lambda: append_case(dsn, 1, args.seconds),
                 "append-8": lambda: append_case(dsn, 8, args.seconds),
                 "batch-100": lambda: append_case(dsn, 1, args.seconds, per_call=100)}
        # The timed cases run --repeat times, interleaved (raw, ours, raw, ours, ...), and report
        # the median: load from elsewhere on the machine then hits both sides of a ratio alike.
        runs: dict[str, list[Figure]] = {}
        for rep in range(args.repeat):
            for case in (c for c in cases if c in timed):
                print(f"# running {case} ({rep + 1}/{args.repeat}) ...", file=sys.stderr, flush=True)
                runs.setdefault(case, []).append(await timed[case]())
        for case, results in runs.items():
            ordered = sorted(results, key=lambda f: f.rate)
            median = ordered[len(ordered) // 2]
            if len(ordered) > 1:
                median.note = (f"median of {len(ordered)}: {ordered[0].rate:,.0f} .. "
                               f"{ordered[-1].rate:,.0f}")
            figures[case] = median
        for case in (c for c in cases if c not in timed):
            print(f"# running {case} ...", file=sys.stderr, flush=True)
            if case == "sequencer":
                key_text = private_key_to_text(generate_private_key())
                folder = tempfile.mkdtemp(prefix="lookback-bench-checkpoints-")
                try:
                    extra.extend(await sequencer_case(dsn, args.seconds, key_text, folder))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            elif case == "verify":
                extra.extend(await verify_case(admin, args.dsn, name + "_verify", args.verify_events,
                                               args.workers))
            else:
                raise SystemExit(f"unknown case {case!r}; cases: {', '.join(ALL_CASES)}")
    finally:
        await drop_database(admin, name)
        await admin.close()
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(other work on the machine slows every figure)")
    print_table(figures, extra)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get(
        "LOOKBACK_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each timed append case; the median is reported")
    parser.add_argument("--verify-events", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=None,
                        help="verify worker processes (default: one per CPU)")
    parser.add_argument("--cases", nargs="*", choices=ALL_CASES)
    asyncio.run(main(parser.parse_args()))
