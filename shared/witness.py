"""Witnessed checkpoints: every signed checkpoint is shipped off the machine as it is signed.

A database superuser can rewrite the tables and recompute every hash, and the checkpoint folder
beside the database is on the same machine; a copy that has left it cannot be reached. A
*witness* is such a copy: a `WitnessTarget` takes a signed note and acknowledges it once it is
durably stored elsewhere. Two targets are built in:

- `FolderWitness`: a folder on other storage (a mounted share, another disk): the note is written
  to a temporary file, fsynced, renamed, and the folder fsynced;
- `GitWitness`: a git repository (any remote git accepts: a bare repository on another host, a
  hosted one): the note is committed and pushed; the push is the acknowledgement.

A witness never overwrites: a note for a size it already holds must be byte-identical, or the
shipper stops with `witness_conflict` (two different signed heads of one size are evidence of a
fork, to be looked at by a person, not resolved by a program).

`WitnessShipper` runs beside the sequencer. It reads what to ship from `es.checkpoints` (the
signed notes are stored there in the same transaction as the ledger rows they sign), ships each
checkpoint newer than what a target holds, in ascending order, retrying with backoff until the
target acknowledges, and sets `lookback_witness_tree_size{target}` to the newest size a target
acknowledged (absent until a target has acknowledged or reported something). The sequencer wakes
it after every checkpoint; it also polls, so nothing depends on the wake-up.

`verify --checkpoint-dir <a witness folder, or a clone of the witness repository>` checks the
live database or an export against the witness copy.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from shared.store import login_dsn
from shared.logging import get_logger
from shared.sequencer import checkpoint_file_name

log = get_logger()
_PAGE = 100
_LIST = f"SELECT tree_size, note FROM es.checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT {_PAGE}"
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then every 30 s: retried until acknowledged


class WitnessConflict(RuntimeError):
    """The witness holds a different note for the same tree size: never overwritten."""


class WitnessTarget(Protocol):
    name: str

    def newest(self) -> int | None:
        """The largest tree size this witness has acknowledged (None: none yet)."""

    def ship(self, tree_size: int, note: str) -> None:
        """Store the note durably off the machine; return only once it is acknowledged."""


def _sizes(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    sizes = []
    for path in folder.glob("checkpoint-*.txt"):
        digits = path.name[len("checkpoint-"):-len(".txt")]
        if digits.isdigit():
            sizes.append(int(digits))
    return sizes


def _existing_matches(path: Path, note: str) -> bool:
    """True when `path` already holds `note`; WitnessConflict when it holds something else."""
    if not path.exists():
        return False
    if path.read_text(encoding="utf-8") != note:
        raise WitnessConflict(f"{path} holds a different signed note for the same tree size")
    return True


class FolderWitness:
    """A folder on other storage (another disk, a mounted share)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.name = f"folder:{self.folder}"

    def newest(self) -> int | None:
        return max(_sizes(self.folder), default=None)

    def ship(self, tree_size: int, note: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / checkpoint_file_name(tree_size)
        if _existing_matches(path, note):
            return
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(note)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # the rename itself is durable only once the folder is
        finally:
            os.close(descriptor)


class GitWitness:
    """A git repository: each checkpoint is one commit, pushed to `remote` (branch `branch`).

    `workdir` is this machine's clone, made on first use. A push rejected because someone else
    pushed first is fetched and rebased, then pushed again (the files never collide unless two
    different notes for one size exist, which is a conflict).
    """

    def __init__(self, remote: str, workdir: str | Path, *, branch: str = "main",
                 timeout: float = 60.0) -> None:
        self.remote, self.workdir, self.branch, self.timeout = remote, Path(workdir), branch, timeout
        self.name = f"git:{remote}"

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GIT_AUTHOR_NAME": "lookback", "GIT_AUTHOR_EMAIL": "lookback@localhost",
               "GIT_COMMITTER_NAME": "lookback", "GIT_COMMITTER_EMAIL": "lookback@localhost",
               "GIT_TERMINAL_PROMPT": "0"}
        return subprocess.run(["git", "-C", str(self.workdir), *args], capture_output=True,
                              text=True, timeout=self.timeout, check=check, env=env)

    def _ready(self) -> None:
        if not (self.workdir / ".git").is_dir():
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._git("init", "-q", "-b", self.branch)
            self._git("remote", "add", "origin", self.remote)
        self._sync()

    def _sync(self) -> None:
        """Bring the clone to what the remote has acknowledged (nothing, for an empty remote)."""
        self._git("fetch", "-q", "origin")
        if self._git("rev-parse", "--verify", "-q", f"origin/{self.branch}", check=False).returncode == 0:
            self._git("reset", "-q", "--hard", f"origin/{self.branch}")

    def newest(self) -> int | None:
        self._ready()
        return max(_sizes(self.workdir), default=None)

    def ship(self, tree_size: int, note: str) -> None:
        self._ready()
        name = checkpoint_file_name(tree_size)
        if _existing_matches(self.workdir / name, note):
            return
        (self.workdir / name).write_text(note, encoding="utf-8", newline="")
        self._git("add", name)
        self._git("commit", "-q", "-m", f"checkpoint {tree_size}")
        try:
            self._git("push", "-q", "origin", f"HEAD:refs/heads/{self.branch}")
        except subprocess.CalledProcessError:
            self._git("pull", "-q", "--rebase", "origin", self.branch)
            self._git("push", "-q", "origin", f"HEAD:refs/heads/{self.branch}")


def targets_from_text(text: str | None, workdir: Path) -> list[WitnessTarget]:
    """`folder:/mnt/witness,git:ssh://host/ledger.git` -> targets (LOOKBACK_WITNESS)."""
    targets: list[WitnessTarget] = []
    for index, item in enumerate(t.strip() for t in (text or "").split(",") if t.strip()):
        kind, _, where = item.partition(":")
        if kind == "folder" and where:
            targets.append(FolderWitness(where))
        elif kind == "git" and where:
            targets.append(GitWitness(where, workdir / f"git-{index}"))
        else:
            raise ValueError(f"a witness is folder:<path> or git:<remote>, not {item!r}")
    return targets


class WitnessShipper:
    """Ships signed checkpoints from `es.checkpoints` to every target, in order, until acknowledged."""

    def __init__(self, dsn: str, targets: Sequence[WitnessTarget], *, role: str | None = None,
                 password: str | None = None, gauge: Any = None, poll_interval: float = 5.0,
                 backoff: Sequence[float] = BACKOFF,
                 active: Callable[[], bool] = lambda: True) -> None:
        self.dsn = login_dsn(dsn, role, password) if role else dsn
        self.targets, self.active = list(targets), active
        self.gauge, self.poll_interval, self.backoff = gauge, poll_interval, tuple(backoff)
        self.acknowledged: dict[str, int] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def caught_up(self, tree_size: int, *, timeout: float) -> bool:
        """Wait (bounded) until every target acknowledged `tree_size`; True if they did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.wake()
        while any(self.acknowledged.get(t.name, -1) < tree_size for t in self.targets):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        if not self.targets:
            return
        await asyncio.gather(*(self._run_target(target, stop) for target in self.targets))

    async def _run_target(self, target: WitnessTarget, stop: asyncio.Event) -> None:
        after: int | None = None
        failures = 0
        conn: asyncpg.Connection | None = None
        try:
            while not stop.is_set():
                if not self.active():  # only the elected sequencer ships; the others stand by
                    await _wait(stop, self._wake, self.poll_interval)
                    continue
                try:
                    if after is None:
                        after = await asyncio.to_thread(target.newest) or 0
                        self._acknowledge(target, after)
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(
                            self.dsn, server_settings={"application_name": "lookback:witness"},
                            timeout=10)
                    rows = await conn.fetch(_LIST, after)
                    for row in rows:
                        await asyncio.to_thread(target.ship, row["tree_size"], row["note"])
                        after = row["tree_size"]
                        self._acknowledge(target, after)
                        log.info("checkpoint_witnessed", target=target.name, tree_size=after)
                    failures = 0
                    if len(rows) == _PAGE:
                        continue
                    await _wait(stop, self._wake, self.poll_interval)
                except WitnessConflict as exc:
                    log.error("witness_conflict", target=target.name, error=str(exc))
                    return
                except Exception as exc:  # unreachable storage, a failed push: retried, never skipped
                    delay = self.backoff[min(failures, len(self.backoff) - 1)]
                    failures += 1
                    log.warning("witness_retry", target=target.name, attempt=failures,
                                error=f"{type(exc).__name__}: {str(exc)[:300]}")
                    await _wait(stop, None, delay)
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()

    def _acknowledge(self, target: WitnessTarget, tree_size: int) -> None:
        self.acknowledged[target.name] = tree_size
        if self.gauge is not None:
            self.gauge.labels(target.name).set(tree_size)



async def _wait(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
        if wake is not None:
            wake.clear()

