"""The batcher's bounded stop: gone callers dropped, the queue answered until the deadline and cut after it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from aimod.errors import ShuttingDownError
from aimod.server.batching import Batcher, ShutdownSummary


class SlowRun:
    """A batch function that takes ``seconds`` per batch, ending early once the batcher's abort is set."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.seen: list[int] = []
        self.abort: threading.Event | None = None
        self.started = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.seen.extend(items)
        self.started.set()
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            if self.abort is not None and self.abort.is_set():
                break
            time.sleep(0.005)
        return [i * 10 for i in items]


def batcher(run: SlowRun, max_batch: int = 1) -> Batcher[int, int]:
    b: Batcher[int, int] = Batcher(run, max_batch=max_batch, wait_s=0)
    run.abort = b.abort
    return b


def test_rows_of_callers_gone_are_dropped_not_computed() -> None:
    async def main() -> tuple[list[int], list[int], ShutdownSummary]:
        run = SlowRun(0.05)
        b = batcher(run)
        b.start()
        first = asyncio.ensure_future(b.submit(0))  # occupies the worker
        waiting = [asyncio.ensure_future(b.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.01)
        for task in waiting[::2]:  # callers 1, 3, 5 hang up while queued
            task.cancel()
        answers = [await first] + [await t for t in waiting[1::2]]
        return answers, run.seen, await b.stop(timeout_s=5)

    answers, seen, summary = asyncio.run(main())
    assert answers == [0, 20, 40]
    assert seen == [0, 2, 4]
    assert summary.cut == 0
    assert summary.on_time


def test_the_queue_is_cut_at_the_deadline_and_the_running_batch_ends_early() -> None:
    async def main() -> tuple[list[object], ShutdownSummary, float]:
        run = SlowRun(10.0)  # each batch would take 10 s
        b = batcher(run, max_batch=2)
        b.start()
        calls = [asyncio.ensure_future(b.submit(i)) for i in range(6)]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        summary = await b.stop(timeout_s=0.3)
        elapsed = time.perf_counter() - started
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        return outcomes, summary, elapsed

    outcomes, summary, elapsed = asyncio.run(main())
    assert all(isinstance(o, ShuttingDownError) for o in outcomes)
    assert summary.cut == 6
    assert summary.answered == 0
    assert not summary.on_time
    assert elapsed < 3  # the 10 s batch ended at its next step after the 0.3 s deadline


def test_stop_answers_what_fits_before_the_deadline() -> None:
    async def main() -> tuple[list[object], ShutdownSummary]:
        b = batcher(SlowRun(0.02))
        b.start()
        calls = [asyncio.ensure_future(b.submit(i)) for i in range(4)]
        await asyncio.sleep(0)
        summary = await b.stop(timeout_s=10)
        return await asyncio.gather(*calls, return_exceptions=True), summary

    outcomes, summary = asyncio.run(main())
    assert outcomes == [0, 10, 20, 30]
    assert summary.as_fields()["answered"] == 4
    assert summary.on_time


def test_stop_is_idempotent_and_refuses_new_rows() -> None:
    async def main() -> tuple[ShutdownSummary, ShutdownSummary, BaseException | None]:
        b = batcher(SlowRun(0.2))
        b.start()
        pending = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.01)
        first, second = await asyncio.gather(b.stop(timeout_s=5), b.stop(timeout_s=0))
        await pending
        try:
            await b.submit(2)
        except ShuttingDownError as error:
            return first, second, error
        return first, second, None

    first, second, refused = asyncio.run(main())
    assert first is second  # the second call waits for the first, whatever its own timeout
    assert first.answered == 1
    assert first.cut == 0
    assert isinstance(refused, ShuttingDownError)


def test_a_cancelled_caller_of_stop_does_not_cancel_the_stop() -> None:
    async def main() -> ShutdownSummary:
        b = batcher(SlowRun(0.2))
        b.start()
        pending = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.01)
        impatient = asyncio.ensure_future(b.stop(timeout_s=5))
        await asyncio.sleep(0.01)
        impatient.cancel()
        summary = await b.stop()
        assert await pending == 10
        return summary

    assert asyncio.run(main()).answered == 1


@pytest.mark.parametrize("timeout_s", [0.0, None])
def test_stop_without_rows(timeout_s: float | None) -> None:
    async def main() -> ShutdownSummary:
        b = batcher(SlowRun(0.0))
        b.start()
        return await b.stop(timeout_s)

    summary = asyncio.run(main())
    assert (summary.answered, summary.dropped, summary.cut, summary.on_time) == (0, 0, 0, True)
