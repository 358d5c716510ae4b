"""Capture of ``print`` and ``logging`` output inside function calls.

A call runs with a :class:`LogCapture` set in a context variable (works for worker threads
and asyncio tasks alike). ``sys.stdout``/``sys.stderr`` are replaced once by proxies that
append to the current capture when there is one and pass through otherwise; a handler on the
root logger does the same for ``logging`` records. Lines are ``"[LEVEL] message"`` with LEVEL
one of LOG, INFO, WARN, ERROR, DEBUG (PROTOCOL.md §10), at most ``MAX_LOG_LINES_COUNT`` per
call, each at most ``MAX_LOG_LINE_LENGTH_COUNT`` characters.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from convection import knobs

_current: contextvars.ContextVar[LogCapture | None] = contextvars.ContextVar(
    "convection_log_capture", default=None
)

_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "ERROR",
}

LogSink = Callable[[str, list[str]], None]


class LogCapture:
    """The log lines of one function call."""

    __slots__ = ("_partial", "lines", "truncated")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial: dict[str, str] = {}
        self.truncated = False

    def add(self, level: str, message: str) -> None:
        if len(self.lines) >= knobs.MAX_LOG_LINES_COUNT:
            if not self.truncated:
                self.truncated = True
                self.lines.append(f"[WARN] Log overflow (maximum {knobs.MAX_LOG_LINES_COUNT} lines); later lines were dropped.")
            return
        limit = knobs.MAX_LOG_LINE_LENGTH_COUNT
        if len(message) > limit:
            message = message[:limit] + " (truncated)"
        self.lines.append(f"[{level}] {message}")

    def write_stream(self, level: str, text: str) -> None:
        buf = self._partial.get(level, "") + text
        *complete, rest = buf.split("\n")
        for line in complete:
            self.add(level, line)
        self._partial[level] = rest

    def finish(self) -> list[str]:
        for level, rest in self._partial.items():
            if rest:
                self.add(level, rest)
        self._partial.clear()
        return self.lines


class _StreamProxy(io.TextIOBase):
    def __init__(self, original: TextIO, level: str) -> None:
        self._original = original
        self._level = level

    def write(self, s: str) -> int:
        cap = _current.get()
        if cap is None:
            return self._original.write(s)
        cap.write_stream(self._level, s)
        return len(s)

    def flush(self) -> None:
        if _current.get() is None:
            self._original.flush()

    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _CaptureHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        cap = _current.get()
        if cap is None:
            return
        try:
            msg = record.getMessage()
            if record.exc_info:
                import traceback

                msg += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        except Exception:
            msg = str(record.msg)
        cap.add(_LEVELS.get(record.levelno, "LOG"), msg)


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Install the stdout/stderr proxies and the logging handler (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        if not isinstance(sys.stdout, _StreamProxy):
            sys.stdout = _StreamProxy(sys.stdout, "LOG")
        if not isinstance(sys.stderr, _StreamProxy):
            sys.stderr = _StreamProxy(sys.stderr, "ERROR")
        root = logging.getLogger()
        if not root.handlers:
            # Keep the server's own warnings visible: without any other handler Python's
            # last-resort printing would be silenced by the capture handler below.
            console = logging.StreamHandler(sys.__stderr__)
            console.setLevel(logging.WARNING)
            console.addFilter(lambda record: _current.get() is None)
            console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            root.addHandler(console)
        root.addHandler(_CaptureHandler(level=logging.DEBUG))
        # Functions' logging.debug/info must reach the capture handler; libraries stay quiet.
        if root.level > logging.DEBUG:
            root.setLevel(logging.DEBUG)
        for noisy in ("asyncio", "uvicorn", "httpx", "httpcore", "watchfiles", "websockets", "hpack", "urllib3"):
            lg = logging.getLogger(noisy)
            if lg.level == logging.NOTSET:
                lg.setLevel(logging.WARNING)


def _ensure_streams() -> None:
    # Something (a test runner, a REPL) may have replaced the streams after install().
    if not isinstance(sys.stdout, _StreamProxy):
        sys.stdout = _StreamProxy(sys.stdout, "LOG")
    if not isinstance(sys.stderr, _StreamProxy):
        sys.stderr = _StreamProxy(sys.stderr, "ERROR")


def begin_capture() -> tuple[LogCapture, contextvars.Token[LogCapture | None]]:
    install()
    if type(sys.stdout) is not _StreamProxy or type(sys.stderr) is not _StreamProxy:
        _ensure_streams()
    cap = LogCapture()
    return cap, _current.set(cap)


def end_capture(token: contextvars.Token[LogCapture | None]) -> None:
    _current.reset(token)


def server_log(logger: logging.Logger, level: int, message: str, *args: object) -> None:
    """Log to the server's own log even while a function's output is being captured (the
    line is not added to the function's log lines, so it never reaches the caller)."""
    token = _current.set(None)
    try:
        logger.log(level, message, *args)
    finally:
        _current.reset(token)
