"""Dynamic batching: concurrent requests gathered into one model call, run off the event loop.

The first request of a batch waits up to ``wait_s`` for others (or until ``max_batch`` rows are there); the
batch then runs in the model's single worker thread while the event loop keeps accepting requests. Each item
carries everything its row needs (its modulation and its key come from its own content), so a row's answer
does not depend on which batch it lands in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aimod.errors import ShuttingDownError

__all__ = ["BatchStats", "Batched", "Batcher"]

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


class Batcher(Generic[T, R]):
    """Runs ``run(items) -> results`` (same order, same length) on batches of submitted items.

    ``run`` may return an exception instance for a row; that row's caller gets it raised, the others their
    results. If ``run`` raises, every row of the batch gets the error.

    Example:
        >>> async def main():
        ...     batcher = Batcher(lambda xs: [x * 2 for x in xs], max_batch=8, wait_s=0.01)
        ...     batcher.start()
        ...     out = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        ...     await batcher.stop()
        ...     return out, batcher.stats.batches
        >>> asyncio.run(main())
        ([0, 2, 4, 6, 8], 1)
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

    async def stop(self) -> None:
        """Finishes every queued row, then stops the worker and its thread."""
        self._closing = True
        if self._queue is not None and self._task is not None:
            if not self._task.done():
                await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

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
            items = [item for item, _ in batch]
            started = time.perf_counter()
            try:
                results: Sequence[R | BaseException] = await loop.run_in_executor(self._executor, self._run, items)
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # delivered to every caller of the batch
                results = [error] * len(items)
            self._record(len(items), time.perf_counter() - started)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
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

    async def stop(self) -> None:
        """Finishes every queued row, then stops the batcher."""
        await self._batcher.stop()
