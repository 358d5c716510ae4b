"""A socket's outbox: every frame a sync socket sends, in order, within a byte budget
(``SYNC_OUTBOX_MAX_BYTES``), sent at once while the socket is writable and by a sender task
when it must wait; and the timer the sync worker uses (a protocol, for tests). Split out of
``sync/worker.py``; docs/internals/fanout.md describes the send path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType
from typing import Any, Protocol

from convection import knobs

logger = logging.getLogger("convection.sync.worker")

SendText = Callable[[str], Awaitable[None]]
"""Sends one WebSocket text frame; raises when the socket is gone."""

class Timer(Protocol):
    """Monotonic time in seconds and a way to wait for it (injected so tests do not sleep)."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class AsyncioTimer:
    """The monotonic clock, and the event loop's sleep (only differences of ``monotonic``
    are used, so it need not be the loop's own clock: ``time.monotonic`` is read on every
    frame queued and costs a fifth of ``asyncio.get_running_loop().time()``)."""

    monotonic = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Outbox:
    """The FIFO of outbound text frames of one socket, drained by one sender task.

    Counts the Transitions queued or being sent (``pending_transitions``) for back-pressure,
    remembers when a message was last queued (``last_activity``, for the heartbeat), and
    calls ``on_transition_sent`` each time a Transition has left. When ``send`` raises the
    outbox is ``broken``: pending messages are dropped and ``on_broken`` is called.

    Byte budget: ``queued_bytes`` counts what is queued or being sent. A push that would take
    it past ``max_bytes`` while a send is waiting for the socket (one message larger than the
    budget alone still goes out; frames queued in this loop iteration while the socket is
    writable are only waiting for the iteration's end) means the client stopped reading:
    the queue is dropped (its memory freed), the outbox is ``overflowed``, later pushes are
    ignored and ``on_overflow`` is called once.
    """

    def __init__(
        self,
        send: SendText,
        timer: Timer,
        *,
        max_bytes: int = knobs.SYNC_OUTBOX_MAX_BYTES,
        on_transition_sent: Callable[[], None] = lambda: None,
        on_broken: Callable[[BaseException], None] = lambda exc: None,
        on_overflow: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._send = send
        self._timer = timer
        self._max_bytes = max_bytes
        self._on_transition_sent = on_transition_sent
        self._on_broken = on_broken
        self._on_overflow = on_overflow
        self._queue: deque[tuple[str, int, bool]] = deque()
        self._wakeup = asyncio.Event()
        self._idle = True  # nothing queued or being sent
        self._idle_event: asyncio.Event | None = None  # created by the first flush()
        self._sending = False
        self._started = False
        self._resume: tuple[Coroutine[Any, Any, None], Any, int, bool] | None = None
        self._kick_pending = False  # _kick is scheduled (call_soon)
        self._call_soon: Callable[..., object] = lambda callback: None  # the loop's, from run()
        self._kicking = False
        self._stopped = False  # the sender task ended: nothing more is sent
        self.pending_transitions = 0
        self.transitions_sent = 0  # for /metrics
        self.queued_bytes = 0
        self.last_activity = timer.monotonic()
        self.broken: BaseException | None = None
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._queue)

    def _admit(self, size: int, transition: bool) -> bool:
        if self.broken is not None or self.overflowed:
            return False
        if (
            self.queued_bytes > 0
            and self.queued_bytes + size > self._max_bytes
            and (self._sending or not self._started)  # stuck behind a waiting send
        ):
            self.overflowed = True
            wanted = self.queued_bytes + size
            self._queue.clear()
            self.queued_bytes = 0
            self.pending_transitions = 0
            self._on_overflow(wanted)
            return False
        self.queued_bytes += size
        if transition:
            self.pending_transitions += 1
        self.last_activity = self._timer.monotonic()
        self._idle = False
        return True

    def push(self, text: str, *, size: int | None = None, transition: bool = False) -> None:
        """Queue ``text`` (``size``: its encoded bytes, default its length).

        Frames leave at the end of the current event-loop iteration, all those queued in it
        in one burst, from a callback (:meth:`_kick`) rather than the sender task: a
        WebSocket send completes without waiting while the socket is writable, so the
        frames leave without a task switch. Not at once: writing each reply the moment it
        is computed woke the client for every frame and cost more server CPU per frame than
        the burst (bench/PROFILES.md, "2026-12-08 WebSocket cached query"). If a send has
        to wait, the sender task finishes it; later frames queue behind it, so the FIFO
        order holds."""
        size = len(text) if size is None else size
        if not self._admit(size, transition):
            return
        self._queue.append((text, size, transition))
        if self._sending or not self._started:
            self._wakeup.set()
        elif not self._kick_pending:
            self._kick_pending = True
            self._call_soon(self._kick)

    def _kick(self) -> None:
        """Send what is queued, in order, while each send completes at once."""
        self._kick_pending = False
        self._kicking = True
        try:
            while (
                self._queue
                and not self._sending
                and not self._stopped
                and self.broken is None
                and not self.overflowed
            ):
                text, size, transition = self._queue.popleft()
                if not self._start_send(text, size, transition):
                    return  # it has to wait: the sender task finishes it and goes on
        finally:
            self._kicking = False

    def _start_send(self, text: str, size: int, transition: bool) -> bool:
        """Start sending one frame here; True when it went out (or the outbox broke), False
        when the send waits (handed to the sender task)."""
        self._sending = True
        sending = self._send(text)
        coro = (
            sending
            if type(sending) is CoroutineType or isinstance(sending, Coroutine)
            else _awaiting(sending)
        )
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            self._sending = False
            self._sent(size, transition)
            return True
        except Exception as exc:
            self._sending = False
            self._break(exc)
            return True
        self._resume = (coro, waiting_on, size, transition)
        self._wakeup.set()
        return False

    def _sent(self, size: int, transition: bool) -> None:
        if self.overflowed or self.broken is not None:
            return
        self.queued_bytes -= size
        if transition:
            self.pending_transitions -= 1
            self.transitions_sent += 1
            self._on_transition_sent()
        if not self._queue:
            self._set_idle()
        elif not self._kicking:
            self._wakeup.set()

    def _set_idle(self) -> None:
        self._idle = True
        if self._idle_event is not None:
            self._idle_event.set()

    def _break(self, exc: BaseException) -> None:
        self.broken = exc
        self._queue.clear()
        self.pending_transitions = 0
        self.queued_bytes = 0
        self._set_idle()
        self._on_broken(exc)

    async def run(self) -> None:
        """Send queued frames in order until cancelled or ``send`` fails."""
        self._call_soon = asyncio.get_running_loop().call_soon
        self._started = True
        try:
            await self._run()
        finally:
            self._stopped = True

    async def _run(self) -> None:
        while True:
            resume = self._resume
            sending: Awaitable[None]
            if resume is not None:
                # A send started by _kick has to wait for the socket: finish it here.
                self._resume = None
                coro, waiting_on, size, is_transition = resume
                sending = _finish_started(coro, waiting_on)
            elif not self._queue or self._sending:
                if not self._sending:
                    self._set_idle()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            else:
                text, size, is_transition = self._queue.popleft()
                self._sending = True
                sending = self._send(text)
            try:
                await sending
            except Exception as exc:
                self._sending = False
                self._break(exc)
                return
            finally:
                self._sending = False
            self._sent(size, is_transition)

    async def flush(self) -> None:
        """Wait until everything queued so far has been sent (or the outbox broke)."""
        while not self._idle:
            if self._idle_event is None:
                self._idle_event = asyncio.Event()
            event = self._idle_event
            event.clear()
            if self._idle:
                return
            await event.wait()


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _finish_started(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Run to completion a coroutine that was started by hand (``coro.send(None)``) and is
    suspended on ``waiting_on`` (what it yielded: an asyncio future, or None for a bare
    yield), the way a Task would: wait for that, resume it, repeat."""
    while True:
        try:
            if waiting_on is None:
                await asyncio.sleep(0)
            else:
                # As a Task does with what a coroutine yields: the future is marked as being
                # awaited ("blocking"); clear the mark so it can be awaited here.
                waiting_on._asyncio_future_blocking = False
                await waiting_on
        except BaseException as exc:  # cancelled (or the future failed): pass it in
            try:
                waiting_on = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
