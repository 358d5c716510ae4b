"""The socket outbox: FIFO order with frames sent in a burst at the end of the loop
iteration (not by the sender task), and its byte budget."""

from __future__ import annotations

import asyncio

from convection.sync.outbox import AsyncioTimer, Outbox


class Socket:
    """A send function whose sends can be held (a client that does not read)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.senders: list[asyncio.Task[object] | None] = []  # the task each send ran in
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, text: str) -> None:
        self.senders.append(asyncio.current_task())
        await self.open.wait()
        self.sent.append(text)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_frames_pushed_in_one_loop_iteration_leave_together_at_its_end() -> None:
    socket = Socket()
    outbox = Outbox(socket.send, AsyncioTimer())
    runner = asyncio.get_running_loop().create_task(outbox.run())
    await settle()
    outbox.push("a", transition=True)
    assert socket.sent == []  # not yet: the frames of this iteration leave together
    outbox.push("b")
    assert outbox.pending_transitions == 1
    await asyncio.sleep(0)  # one loop iteration
    assert socket.sent == ["a", "b"]
    assert socket.senders == [None, None]  # from a loop callback, not the sender task
    assert outbox.pending_transitions == 0 and outbox.queued_bytes == 0
    await outbox.flush()
    runner.cancel()


async def test_order_holds_when_a_send_has_to_wait() -> None:
    socket = Socket()
    outbox = Outbox(socket.send, AsyncioTimer())
    runner = asyncio.get_running_loop().create_task(outbox.run())
    await settle()
    socket.open.clear()
    outbox.push("a", transition=True)
    outbox.push("b")
    outbox.push("c", transition=True)
    await settle()
    assert socket.sent == []
    assert outbox.pending_transitions == 2
    socket.open.set()
    await outbox.flush()
    assert socket.sent == ["a", "b", "c"]
    assert outbox.pending_transitions == 0
    assert outbox.queued_bytes == 0
    outbox.push("d")
    await asyncio.sleep(0)
    assert socket.sent[-1] == "d"
    runner.cancel()


async def test_past_the_budget_the_queue_is_dropped_once() -> None:
    socket = Socket()
    overflows: list[int] = []
    outbox = Outbox(socket.send, AsyncioTimer(), max_bytes=100, on_overflow=overflows.append)
    runner = asyncio.get_running_loop().create_task(outbox.run())
    await settle()
    outbox.push("x" * 500)  # one frame over the budget still goes out alone
    await asyncio.sleep(0)
    assert socket.sent == ["x" * 500]
    socket.open.clear()
    outbox.push("y" * 30)
    await asyncio.sleep(0)  # its send starts and waits: the client stopped reading
    for _ in range(3):
        outbox.push("y" * 30)
    await settle()
    assert overflows == [120]
    assert outbox.overflowed
    assert outbox.queued_bytes == 0
    assert len(outbox) == 0
    outbox.push("z")
    assert len(outbox) == 0 and overflows == [120]
    runner.cancel()


async def test_frames_of_one_loop_iteration_are_not_held_against_the_budget_while_writable() -> None:
    socket = Socket()
    overflows: list[int] = []
    outbox = Outbox(socket.send, AsyncioTimer(), max_bytes=100, on_overflow=overflows.append)
    runner = asyncio.get_running_loop().create_task(outbox.run())
    await settle()
    outbox.push("x" * 80)
    outbox.push("y" * 80)  # the first has not left yet: it waits for the iteration's end
    await asyncio.sleep(0)
    assert socket.sent == ["x" * 80, "y" * 80] and overflows == []
    assert not outbox.overflowed and outbox.queued_bytes == 0
    runner.cancel()
