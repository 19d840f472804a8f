"""Worker processes for the audit sources: `check_entry` runs in parallel, the fold stays in order.

Each worker returns tagged items for its slice of the input, in order:
(0, position, leaf) a checked entry; (1, record, raw) a checkpoint, fed to the fold whole;
(2, reason, position) an entry `check_entry` refused; (3, reason) not a record at all.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from shared.audit_entry import Mismatch, check_entry
from shared.audit_verify import Verifier

PARALLEL_MIN_BYTES = 8 << 20  # below this a file is verified in-process
PARALLEL_MIN_ENTRIES = 20_000


Item = tuple[Any, ...]  # (tag, ...), see the module's docstring


def fold_items(verifier: Verifier, items: list[Item], where_of: Callable[[int], str | None]
               ) -> bool:
    """Fold a worker's results in order; True once a failure is recorded."""
    for index, item in enumerate(items):
        tag = item[0]
        if tag == 0:  # (0, position, leaf)
            if verifier.feed_checked(item[1], item[2]) is not None:
                # name the input only now: formatting it for every entry would cost more
                assert verifier.failure is not None
                verifier.failure = replace(verifier.failure, where=where_of(index))
                return True
        elif tag == 1:  # (1, record, raw): a checkpoint, fed whole
            if verifier.feed(item[1], where_of(index), item[2]) is not None:
                return True
        elif tag == 2:  # (2, reason, position): check_entry refused it
            verifier.feed_mismatch(Mismatch(item[1], item[2]), where_of(index))
            return True
        else:  # (3, reason): not a record at all
            verifier.fail_input(item[1], where_of(index))
            return True
    return False


def check_item(record: Any, raw: bytes | None) -> Item:
    if type(record) is dict and record.get("kind") == "entry":
        try:
            position, leaf, line = check_entry(record, raw is not None)
        except Mismatch as exc:
            return (2, exc.reason, exc.position)
        if raw is not None and line != raw:
            return (2, "the line is not in canonical form (its bytes differ from the canonical "
                    "JSON of what it says)", position)
        return (0, position, leaf)
    return (1, record, raw)


def worker_count(workers: int | None) -> int:
    if workers is not None:
        return workers
    return min(os.cpu_count() or 1, 8)


@contextmanager
def process_pool(workers: int) -> Iterator[Executor]:
    """Worker processes for `check_entry`; on the way out, queued work is dropped, not waited for."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ordered(pool: Executor, fn: Callable[..., Any], jobs: list[tuple[Any, ...]], window: int
            ) -> Iterator[Any]:
    """Results of fn(*job) in job order, with at most `window` jobs in flight."""
    pending = []
    jobs_iter = iter(jobs)
    for job in jobs_iter:
        pending.append(pool.submit(fn, *job))
        if len(pending) >= window:
            break
    while pending:
        future = pending.pop(0)
        result = future.result()
        following: tuple[Any, ...] | None = next(jobs_iter, None)
        if following is not None:
            pending.append(pool.submit(fn, *following))
        yield result
    # (a consumer that stops early leaves the rest to the pool's shutdown)
