"""``convection serve --workers N``: N server processes of one deployment on one host.

The parent process binds the listening sockets (the API port and the HTTP-actions port) and
forks the workers, which inherit them: the kernel hands each new connection to one of the
workers accepting on the shared socket. Each worker is a whole convection server (its own
database handle, query cache, subscriptions and function threads, on its own GIL); they share
nothing but the store, and learn of each other's commits from the commit log
(database/committer.py). The parent opens no database and starts no thread, so forking is
safe; it holds the data directory's owner lock for all of them (server/owner.py) and
supervises: a worker that dies is started again (after ``WORKER_RESTART_DELAY_MS``), and
SIGTERM/SIGINT stop them all.

The first worker starts alone and the others once it is ready, so one-time work at the
start of a store (creating system tables, migrating an old store) is done once, not raced.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from convection import knobs

log = logging.getLogger("convection.workers")

# What a worker runs: given the shared sockets and a callback to call once it is ready to
# serve, serve until told to stop. Returns the process's exit code.
WorkerMain = Callable[[list[socket.socket], Callable[[], None]], int]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket shared by the workers (inheritable)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Forks and watches the worker processes (see the module docstring)."""

    def __init__(self, count: int, sockets: list[socket.socket], main: WorkerMain,
                 on_started: Callable[[], None] | None = None) -> None:
        self.count = max(count, 1)
        self.sockets = sockets
        self.main = main
        self.on_started = on_started
        self.pids: dict[int, int] = {}  # pid -> worker number
        self._stopping = False

    def _fork(self, number: int, ready_fd: int | None) -> int:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)

                def ready() -> None:
                    if ready_fd is not None:
                        os.write(ready_fd, b"1")
                        os.close(ready_fd)

                code = self.main(self.sockets, ready)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:
                log.exception("worker %d failed", number)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pids[pid] = number
        return pid

    def run(self) -> int:
        """Start the workers and supervise them until a signal stops them; returns the exit
        code (non-zero when the first worker could not start)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        read_fd, write_fd = os.pipe()
        first = self._fork(1, write_fd)
        os.close(write_fd)
        if os.read(read_fd, 1) != b"1":  # the first worker died before it was ready
            os.close(read_fd)
            _, status = os.waitpid(first, 0)
            self.pids.pop(first, None)
            return os.waitstatus_to_exitcode(status) or 1
        os.close(read_fd)
        if self.on_started is not None:
            self.on_started()
        for number in range(2, self.count + 1):
            self._fork(number, None)
        while self.pids:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid not in self.pids:
                continue
            number = self.pids.pop(pid)
            if self._stopping:
                continue
            log.warning("worker %d (pid %d) exited with %s; starting it again", number, pid,
                        os.waitstatus_to_exitcode(status))
            print(f"convection: worker {number} (pid {pid}) exited "
                  f"({os.waitstatus_to_exitcode(status)}); starting it again", file=sys.stderr)
            time.sleep(knobs.WORKER_RESTART_DELAY_MS / 1000)
            if not self._stopping:
                self._fork(number, None)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
