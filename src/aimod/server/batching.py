"""Dynamic batching: concurrent requests gathered into one model call, run off the event loop.

The first request of a batch waits up to ``wait_s`` for others (or until ``max_batch`` rows are there); the
batch then runs in the model's single worker thread while the event loop keeps accepting requests. Each item
carries everything its row needs (its modulation and its key come from its own content), so a row's answer
does not depend on which batch it lands in.

Shutdown (:meth:`Batcher.stop`) is bounded: no new rows are taken, rows whose callers have gone (their
futures cancelled) are dropped without being computed, the queue is answered until the deadline, and at the
deadline whatever is left is cut (its callers get :class:`~aimod.errors.ShuttingDownError`) and
:attr:`Batcher.abort` tells the running batch to end at its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aimod.errors import ShuttingDownError

__all__ = ["BatchStats", "Batched", "Batcher", "ShutdownSummary"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """Counters for ``/healthz``."""

    batches: int = 0
    rows: int = 0
    largest: int = 0
    busy_s: float = 0.0
    sizes: dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    """Rows not answered because their caller had gone (skipped before their batch, or ended inside it)."""
    cut: int = 0
    """Rows refused at the shutdown deadline."""


@dataclass(frozen=True)
class ShutdownSummary:
    """What a :meth:`Batcher.stop` did, for the ``stopped`` log line and the process's exit status.

    Example:
        >>> ShutdownSummary(answered=3, dropped=1, cut=0, seconds=0.25, on_time=True).as_fields()
        {'answered': 3, 'dropped': 1, 'cut': 0, 'seconds': 0.25, 'on_time': True}
    """

    answered: int
    """Rows answered after the stop began."""
    dropped: int
    """Rows whose callers had gone, not computed (or ended early) after the stop began."""
    cut: int
    """Rows refused at the deadline, queued or running."""
    seconds: float
    """From the stop's beginning to the released worker."""
    on_time: bool
    """Whether every row was answered or dropped before the deadline (``cut == 0``)."""

    def as_fields(self) -> dict[str, int | float | bool]:
        """The summary as log fields (seconds to the millisecond)."""
        return {
            "answered": self.answered,
            "dropped": self.dropped,
            "cut": self.cut,
            "seconds": round(self.seconds, 3),
            "on_time": self.on_time,
        }


class Batcher(Generic[T, R]):
    """Runs ``run(items) -> results`` (same order, same length) on batches of submitted items.

    ``run`` may return an exception instance for a row; that row's caller gets it raised, the others their
    results. If ``run`` raises, every row of the batch gets the error. A long ``run`` should watch
    :attr:`abort` and return early once it is set (its rows are then cut).

    Example:
        >>> async def main():
        ...     batcher = Batcher(lambda xs: [x * 2 for x in xs], max_batch=8, wait_s=0.01)
        ...     batcher.start()
        ...     out = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        ...     summary = await batcher.stop(timeout_s=5)
        ...     return out, batcher.stats.batches, summary.on_time
        >>> asyncio.run(main())
        ([0, 2, 4, 6, 8], 1, True)
    """

    def __init__(
        self, run: Callable[[Sequence[T]], Sequence[R | BaseException]], *, max_batch: int, wait_s: float
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aimod-model")
        self._closing = False
        self._stopping: asyncio.Future[ShutdownSummary] | None = None
        self.abort = threading.Event()
        """Set at the shutdown deadline: the running batch should end at its next step."""
        self.answered = 0
        """Rows answered (a result or an error) so far."""

    def start(self) -> None:
        """Starts the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._worker(), name="aimod-batcher")

    async def submit(self, item: T) -> R:
        """Queues one row and waits for its result.

        Raises:
            ShuttingDownError: Once the server is shutting down.
        """
        if self._queue is None or self._closing:
            raise ShuttingDownError("The server is shutting down; retry on another replica.", code="shutting_down")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def stop(self, timeout_s: float | None = None) -> ShutdownSummary:
        """Stops taking rows, answers the queue until ``timeout_s`` (``None``: no limit), cuts the rest.

        Idempotent: a second call (say the app's lifespan after the process began the stop at its signal)
        waits for the first and returns the same summary; cancelling a caller does not cancel the stop.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(timeout_s))
        return await asyncio.shield(self._stopping)

    async def _stop(self, timeout_s: float | None) -> ShutdownSummary:
        started = time.perf_counter()
        before = (self.answered, self.stats.dropped, self.stats.cut)
        self._closing = True
        if self._queue is not None and self._task is not None:
            if not self._task.done():
                try:
                    await asyncio.wait_for(self._queue.join(), timeout_s)
                except asyncio.TimeoutError:
                    self.abort.set()
                    self._cut_queue()
                    await self._queue.join()  # the running batch, ending at its next step
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)
        cut = self.stats.cut - before[2]
        return ShutdownSummary(
            answered=self.answered - before[0],
            dropped=self.stats.dropped - before[1],
            cut=cut,
            seconds=time.perf_counter() - started,
            on_time=cut == 0,
        )

    def _cut_queue(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            self._deliver(future, self._deadline_error())
            self._queue.task_done()

    @staticmethod
    def _deadline_error() -> ShuttingDownError:
        return ShuttingDownError(
            "The server reached its shutdown deadline before this request's turn; retry on another replica.",
            code="shutting_down",
        )

    def _deliver(self, future: asyncio.Future[R], result: R | BaseException) -> None:
        """Hands ``result`` to a waiting caller, counting it; a caller gone (cancelled future) is dropped."""
        if future.done():
            self.stats.dropped += 1
        elif isinstance(result, ShuttingDownError):
            self.stats.cut += 1
            future.set_exception(result)
        elif isinstance(result, BaseException):
            self.answered += 1  # an error is an answer too
            future.set_exception(result)
        else:
            self.answered += 1
            future.set_result(result)

    async def _worker(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = []
            for entry in batch:
                if entry[1].done():  # its caller has gone: not worth a row
                    self.stats.dropped += 1
                    queue.task_done()
                else:
                    live.append(entry)
            if not live:
                continue
            items = [item for item, _ in live]
            if self.abort.is_set():  # gathered as the deadline passed: cut without computing
                for _, future in live:
                    self._deliver(future, self._deadline_error())
                    queue.task_done()
                continue
            started = time.perf_counter()
            try:
                results: Sequence[R | BaseException] = await loop.run_in_executor(self._executor, self._run, items)
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # delivered to every caller of the batch
                results = [error] * len(items)
            if self.abort.is_set():  # ended early at the deadline: partial answers are not answers
                results = [self._deadline_error()] * len(items)
            self._record(len(items), time.perf_counter() - started)
            for (_, future), result in zip(live, results, strict=True):
                self._deliver(future, result)
                queue.task_done()

    def _record(self, size: int, seconds: float) -> None:
        s = self.stats
        s.batches += 1
        s.rows += size
        s.largest = max(s.largest, size)
        s.busy_s += seconds
        s.sizes[size] = s.sizes.get(size, 0) + 1


class Batched(Generic[T, R]):
    """The batcher an engine owns: built by :meth:`_batch_with`, started on the running loop, stopped at shutdown."""

    _batcher: Batcher[T, R]
    stats: BatchStats

    def _batch_with(
        self, fn: Callable[[Sequence[T]], Sequence[R | BaseException]], *, max_batch: int, wait_ms: float
    ) -> None:
        self._batcher = Batcher(fn, max_batch=max_batch, wait_s=wait_ms / 1000)
        self.stats = self._batcher.stats

    def start(self) -> None:
        """Starts the batcher on the running event loop."""
        self._batcher.start()

    async def stop(self, timeout_s: float | None = None) -> ShutdownSummary:
        """Answers the queue until ``timeout_s``, cuts the rest, then stops the batcher (:meth:`Batcher.stop`)."""
        return await self._batcher.stop(timeout_s)
