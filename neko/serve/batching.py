"""Dynamic micro-batching: one worker thread runs the model on the examples of many requests at once.

A model call costs about the same for one example as for a dozen, so concurrent requests are queued
and the worker takes everything that arrived within `max_wait_s` of the oldest waiting request (up to
`max_batch` examples) into one call. The queue is bounded in examples (`QueueFull` beyond
`max_queue`), a cancelled job (its client went away) leaves the queue at once, and `stop` serves
what is queued before the worker ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds too many examples to take a request more; the client should retry later."""


@dataclass(eq=False)
class Job(Generic[In, Out]):
    """The examples of one request and the future its results arrive in."""

    items: Sequence[In]
    future: Future[list[Out]] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher(Generic[In, Out]):
    """Feeds `run` (a list of examples to a list of results, in order) from a bounded queue of jobs.

    `on_batch(jobs, examples)` is told of every model call, for metrics.
    """

    def __init__(
        self,
        run: Callable[[list[In]], list[Out]],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        on_batch: Callable[[int, int], None] = lambda jobs, examples: None,
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: deque[Job[In, Out]] = deque()
        self._depth = 0
        self._stopping = False
        self._changed = threading.Condition()
        self._worker = threading.Thread(target=self._serve, name="neko-batcher", daemon=True)

    @property
    def depth(self) -> int:
        """Examples waiting for the model (not counting the batch it is running)."""
        return self._depth

    def start(self) -> None:
        self._worker.start()

    def submit(self, items: Sequence[In]) -> Job[In, Out]:
        """Queue `items`; raises `QueueFull` when they do not fit, RuntimeError once stopping."""
        with self._changed:
            if self._stopping:
                raise RuntimeError("the batcher is shutting down")
            if self._depth + len(items) > self.max_queue:
                raise QueueFull(
                    f"the queue is full ({self._depth} examples waiting, limit {self.max_queue}); retry later"
                )
            job: Job[In, Out] = Job(items)
            self._queue.append(job)
            self._depth += len(items)
            self._changed.notify()
        return job

    def cancel(self, job: Job[In, Out]) -> None:
        """Drop `job` if the model has not taken it yet, freeing its place in the queue."""
        with self._changed:
            if job in self._queue:
                self._queue.remove(job)
                self._depth -= len(job.items)
        job.future.cancel()

    def stop(self, timeout: float | None = None) -> None:
        """Serve what is queued, then end the worker."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._worker.is_alive():
            self._worker.join(timeout)

    def _serve(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            self._run_batch(jobs)

    def _next_batch(self) -> list[Job[In, Out]] | None:
        """Wait for a job, then for more until the oldest has waited `max_wait_s` or the batch is full."""
        with self._changed:
            while not self._queue:
                if self._stopping:
                    return None
                self._changed.wait()
            while self._queue and self._depth < self.max_batch and not self._stopping:
                remaining = self._queue[0].enqueued + self.max_wait_s - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            jobs: list[Job[In, Out]] = []
            size = 0
            while self._queue and (not jobs or size + len(self._queue[0].items) <= self.max_batch):
                job = self._queue.popleft()
                self._depth -= len(job.items)
                if job.future.set_running_or_notify_cancel():
                    jobs.append(job)
                    size += len(job.items)
            return jobs

    def _run_batch(self, jobs: list[Job[In, Out]]) -> None:
        if not jobs:
            return
        items = [item for job in jobs for item in job.items]
        self._on_batch(len(jobs), len(items))
        try:
            results = self._run(items)
        except Exception as error:
            if len(jobs) == 1:
                jobs[0].future.set_exception(error)
                return
            # one request's inputs must not fail the others': serve each alone to find it
            log.info("a batch of %d requests failed (%s); serving them one by one", len(jobs), error)
            for job in jobs:
                self._run_batch([job])
            return
        start = 0
        for job in jobs:
            job.future.set_result(results[start : start + len(job.items)])
            start += len(job.items)
