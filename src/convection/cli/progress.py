"""Progress of ``convection import`` and ``export`` on stderr (docs/cli.md).

On a terminal a live display shows, for an import, each table's bar with documents done of
total, the rate (documents per second) and the estimated time left; for an export, the bytes
written so far and the rate. The display is transient: the summary line printed afterwards
(which also states the rate) is what stays. When stderr is not a terminal nothing live is
drawn, only the summary; except for a streaming import (JSONL, CSV: ``StreamImportProgress``),
which prints a line with the documents, rate and ETA at most every second.
"""

from __future__ import annotations

import time
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    FileSizeColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text


def _stderr() -> Console:
    """A console on the current stderr, its terminal abilities judged now (a console made at
    import time would keep what it saw then)."""
    return Console(stderr=True, highlight=False)


class _DocsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} docs/s", style="progress.data.speed")


class ImportProgress:
    """The ``progress(table, done, total)`` callback of an import, drawn as live bars."""

    def __init__(self, console: Console | None = None) -> None:
        console = console or _stderr()
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _DocsPerSecond(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True,
            disable=not console.is_terminal,
        )
        self.tasks: dict[str, Any] = {}
        self.started: float | None = None  # the first progress report: writing begins

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.tasks:
            self.started = time.monotonic()
            self.bar.start()  # lazily: no empty bar line when nothing is written
        if label not in self.tasks:
            self.tasks[label] = self.bar.add_task(label, total=total or None)
        self.bar.update(self.tasks[label], completed=done, total=total or None)

    def stop(self) -> None:
        if self.tasks:
            self.bar.stop()

    def elapsed_s(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started


class ExportProgress:
    """Counts the bytes of the ZIP being written and shows them live."""

    def __init__(self, out_name: str, console: Console | None = None) -> None:
        console = console or _stderr()
        self.bar = Progress(
            SpinnerColumn(), TextColumn(f"exporting {out_name}"), FileSizeColumn(), TransferSpeedColumn(),
            TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal,
        )
        self.task = self.bar.add_task("export", total=None)
        self.bytes = 0
        self.started = time.monotonic()
        self.bar.start()

    def advance(self, n: int) -> None:
        self.bytes += n
        self.bar.update(self.task, completed=self.bytes)

    def wrap(self, f: IO[bytes]) -> IO[bytes]:
        """``f``, counting every write (seek, tell and the rest go to ``f``)."""
        return _CountingFile(f, self)  # type: ignore[return-value]

    def stop(self) -> None:
        self.bar.stop()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


class _CountingFile:
    def __init__(self, f: IO[bytes], progress: ExportProgress) -> None:
        self._f = f
        self._progress = progress

    def write(self, data: Any) -> int:
        n = self._f.write(data)
        self._progress.advance(len(data))
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def rate(count: float, seconds: float, unit: str) -> str:
    """``in 1.2 s, 8,300 docs/s`` (just the time when it was too quick to measure)."""
    if seconds < 0.001:
        return "in under a millisecond"
    return f"in {seconds:.1f} s, {count / seconds:,.0f} {unit}"


def size(n: int) -> str:
    """``532 bytes``, ``1.4 MB``."""
    value = float(n)
    for unit in ("bytes", "kB", "MB"):
        if value < 1000:
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class StreamImportProgress:
    """Progress of a streaming import (``report(documents, bytes)``): on a terminal a live bar
    over the file's bytes with the documents written, their rate and the time left; otherwise
    one line on stderr at most every second, with the same figures."""

    def __init__(self, table: str, total_bytes: int, console: Console | None = None) -> None:
        self.console = console or _stderr()
        self.table = table
        self.total = max(total_bytes, 1)
        self.started = time.monotonic()
        self.documents = 0
        self._last_line = self.started - 1.0  # the first report prints at once
        self.live = self.console.is_terminal
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[docs]:,} docs"), TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=True,
            disable=not self.live,
        )
        self.task = self.bar.add_task(table, total=self.total, docs=0, rate="")
        if self.live:
            self.bar.start()

    def report(self, documents: int, done_bytes: int) -> None:
        self.documents = documents
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-6)
        speed = documents / elapsed
        if self.live:
            self.bar.update(self.task, completed=done_bytes, docs=documents, rate=f"{speed:,.0f} docs/s")
            return
        if now - self._last_line < 1.0:
            return
        self._last_line = now
        fraction = min(done_bytes / self.total, 1.0)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0
        self.console.print(
            f"{self.table}: {documents:,} documents, {fraction:.0%} of {size(self.total)}, "
            f"{speed:,.0f} docs/s, ETA {eta:,.0f} s",
            highlight=False,
        )

    def stop(self) -> None:
        if self.live:
            self.bar.stop()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started
