"""One owner per data directory (docs/cli.md, "One owner per data directory").

A data directory (``.convection`` beside the functions folder, or ``--data``) holds the
instance secret, the SQLite database (unless ``--db`` names another store), the file blobs and
the deployed code. Exactly one process may write it at a time: a ``convection serve`` /
``dev``, or a CLI command working in-process (``run``, ``data``, ``import``, ``export``,
``env``) while no server runs. A second writer would commit behind the first one's back, and
the first would keep serving stale caches and subscriptions.

**The lock.** :func:`acquire` takes an exclusive ``fcntl.flock`` on ``<data dir>/owner.lock``
(created if missing, never deleted) without waiting, and keeps the file descriptor open for as
long as the process owns the directory. The kernel releases the lock when the descriptor is
closed, which also happens when the process dies in any way, ``kill -9`` included: a crashed
owner never leaves a stale lock behind. With ``--db postgres://...`` the lock still guards the
local data directory (instance secret, file blobs, deployed code); it does not guard the
PostgreSQL database against processes using other data directories.

**Several processes of one deployment count as one owner.** ``flock`` locks belong to the
open file description, not to the process: a child made by ``fork()`` shares its parent's
descriptor and with it the lock. So a future ``serve --workers N`` takes the lock once in the
parent and forks its workers; they own the directory together, and the lock is released only
when the last of them exits. (The descriptor is non-inheritable across ``exec`` as every
Python descriptor is by default; a worker started with ``subprocess`` must receive it with
``pass_fds=[owner.fd]``.) Workers must not call :func:`acquire` themselves: a second
``open()`` of the lock file is a new file description and would be refused.

**The owner file.** The owner writes ``<data dir>/owner.json`` (mode 0600, replaced
atomically): its pid, the command line, the start time, and once it serves, the local URL and
an admin key (the same key ``convection admin-key`` derives from the instance secret, so the
file is no more sensitive than the secret beside it). The CLI reads it to find the running
server (:func:`running_server`) and to name the holder when the lock is refused. The file is
only a description: whether someone owns the directory is decided by the lock alone, so a file
left behind by a killed process is ignored (and replaced by the next owner).
"""

from __future__ import annotations

import datetime
import fcntl
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from convection.errors import ConvectionError

LOCK_FILE = "owner.lock"
INFO_FILE = "owner.json"

__all__ = ["DataDirInUse", "DataDirOwner", "OwnerInfo", "acquire", "read_info", "running_server"]


@dataclass(frozen=True)
class OwnerInfo:
    """What ``owner.json`` says about the process holding a data directory."""

    pid: int
    command: str
    started_at: float  # seconds since the epoch
    url: str | None = None
    admin_key: str | None = None

    def describe(self) -> str:
        since = datetime.datetime.fromtimestamp(self.started_at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        text = f"pid {self.pid} (`{self.command}`, since {since})"
        if self.url:
            text += f", serving {self.url}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "command": self.command, "startedAt": self.started_at,
                "url": self.url, "adminKey": self.admin_key}

    @staticmethod
    def from_json(data: Any) -> OwnerInfo | None:
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        url, key = data.get("url"), data.get("adminKey")
        return OwnerInfo(
            pid=data["pid"], command=str(data.get("command", "?")), started_at=float(data.get("startedAt", 0.0)),
            url=url if isinstance(url, str) else None, admin_key=key if isinstance(key, str) else None,
        )


class DataDirInUse(ConvectionError):
    """Another process owns the data directory; ``holder`` describes it when it said who it is."""

    code = "DataDirectoryInUse"

    def __init__(self, data_dir: Path, holder: OwnerInfo | None) -> None:
        who = holder.describe() if holder is not None else "another process (it has not said which yet)"
        super().__init__(
            f"The data directory {data_dir} is in use by {who}. Only one server (or in-process "
            "CLI command) may use a data directory at a time: stop that process first, talk to "
            "it with --url, or pass another --data."
        )
        self.data_dir = data_dir
        self.holder = holder


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("convection", "__main__.py"):
        argv[0] = "convection"
    return " ".join(argv) or "python"


class DataDirOwner:
    """The held lock of one data directory (see the module docstring). :meth:`release` (or
    process exit) gives it up."""

    def __init__(self, data_dir: Path, fd: int, command: str) -> None:
        self.data_dir = data_dir
        self.fd = fd
        self.info = OwnerInfo(pid=os.getpid(), command=command, started_at=time.time())
        self._write()

    def publish(self, url: str, admin_key: str) -> None:
        """Say where this owner serves: the CLI will send its commands there."""
        self.info = OwnerInfo(self.info.pid, self.info.command, self.info.started_at, url, admin_key)
        self._write()

    def _write(self) -> None:
        path = self.data_dir / INFO_FILE
        tmp = path.with_name(f"{INFO_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(self.info.to_json(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            info = read_info(self.data_dir)
            if info is not None and info.pid == os.getpid():
                (self.data_dir / INFO_FILE).unlink(missing_ok=True)
        finally:
            os.close(self.fd)  # releases the flock
            self.fd = -1

    def __enter__(self) -> DataDirOwner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(data_dir: Path, *, command: str | None = None) -> DataDirOwner:
    """Take the data directory (created if missing) for this process, or raise
    :class:`DataDirInUse` naming the holder. Never waits."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        info = read_info(data_dir)
        raise DataDirInUse(data_dir, info if info is not None and pid_alive(info.pid) else None) from None
    except BaseException:
        os.close(fd)
        raise
    return DataDirOwner(data_dir, fd, command or _command_line())


def read_info(data_dir: Path) -> OwnerInfo | None:
    """What ``owner.json`` says (None: no file, or unreadable). Not proof of ownership."""
    try:
        return OwnerInfo.from_json(orjson.loads((Path(data_dir) / INFO_FILE).read_bytes()))
    except (OSError, orjson.JSONDecodeError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(url: str, timeout_s: float) -> bool:
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/version", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and "convection" in r.text


def running_server(holder: OwnerInfo | None, *, timeout_s: float) -> OwnerInfo | None:
    """``holder`` if it is a live process serving a URL that answers ``/version`` within
    ``timeout_s`` (polled: a server that is still starting gets that long), else None."""
    if holder is None or holder.url is None:
        return None
    deadline = time.monotonic() + timeout_s
    while True:
        if not pid_alive(holder.pid):
            return None
        if _answers(holder.url, max(0.2, min(2.0, deadline - time.monotonic()))):
            return holder
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)
