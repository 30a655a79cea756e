"""MicroBatcher: gather single requests into batches, call a handler once per batch, answer each.

    async def handle(prompts: list[str]) -> list[str]:     # one call, one result per item
        ...

    async with MicroBatcher(handle, max_batch_size=8, batch_wait_timeout_s=0.01) as batcher:
        answer = await batcher.submit("Hello")

When is a batch sent? When it is full; when its oldest item has waited `batch_wait_timeout_s`;
and, with `dispatch_when_idle` (the default), whenever nothing is in flight, since waiting then
only adds latency: at the end of the event loop's current turn, so that items submitted together
(a gather, a burst read in one go) share that batch instead of the first going alone. While
batches are in flight the next one keeps filling, and it is never closed before a dispatch slot
(`max_concurrent_batches`) is free: waiting longer costs nothing then, and a fuller batch is
cheaper per item.

The guarantee: every submitted item gets exactly one answer, its result or an exception:
OverloadedError (queue full, at once), RequestTimeoutError (its deadline passed; never sent if
still queued), or the handler's failure. There is no polling loop: submits, finished batches,
cancellations and one timer each call `_maybe_dispatch()`, so an idle batcher uses no CPU.
Left out: priorities, and retrying failed batches (the caller decides).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import replace
from functools import partial
from typing import Any, Generic, TypeVar

from ..engine.clock import Cancellable, LoopClock, TimerClock
from ..errors import BatchFailedError, OverloadedError, RequestTimeoutError
from .guarantee import (
    BatcherSettings,
    BatcherStats,
    _Batch,
    _Pending,
    _State,
    answer,
    check_at_least,
    fail,
    retry_after_s,
)
from .loops import call_in_loop

T = TypeVar("T")
R = TypeVar("R")
Handler = Callable[[list[T]], Awaitable[list[R]]]

_TIMER_SLACK_S = 1e-4  # timers may fire a hair early (uvloop rounds to ms): treat as due


class MicroBatcher(Generic[T, R]):
    """Batches `submit()`ed items into calls of `handler(items) -> results` (same length, order)."""

    def __init__(
        self,
        handler: Handler[T, R],
        *,
        max_batch_size: int = 8,
        batch_wait_timeout_s: float = 0.01,
        max_concurrent_batches: int = 1,
        max_queue_size: int = 10_000,
        group_key: Callable[[T], Hashable] | None = None,
        dispatch_when_idle: bool = True,
        clock: TimerClock | None = None,
    ):
        self._handler = handler
        self._group_key = group_key
        self._clock: TimerClock = clock or LoopClock()
        self.settings = BatcherSettings(
            max_batch_size,
            batch_wait_timeout_s,
            max_concurrent_batches,
            max_queue_size,
            dispatch_when_idle,
        )
        self.stats = BatcherStats()
        self._reset()

    def _reset(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _State.OPEN
        self._groups: dict[Hashable, deque[_Pending[T, R]]] = {}
        self._pending = 0
        self._in_flight: set[_Batch] = set()
        self._timer: Cancellable | None = None
        self._timer_due: float | None = None
        self._idle: asyncio.Event | None = None
        self._idle_check: asyncio.Handle | None = None

    def configure(self, **changes: Any) -> None:
        """Change settings while running, e.g. `configure(max_batch_size=16)`.

        Safe from any thread (a notebook's widgets, say): the change is checked here, so a bad
        value raises in the caller, then applied on the batcher's own event loop, in order.
        """
        replace(self.settings, **changes)  # validate now, in the caller's thread
        # subtle: send the change, not the resulting settings. Two quick calls would otherwise
        # both start from the old settings, and the second would undo the first.
        call_in_loop(self._loop, self._apply, changes)

    def _apply(self, changes: dict[str, Any]) -> None:
        self.settings = replace(self.settings, **changes)
        if self._loop is not None:
            self._maybe_dispatch()  # a bigger batch size or a shorter wait may free a batch now

    @property
    def pending(self) -> int:
        """Items queued, not yet sent."""
        return self._pending

    @property
    def in_flight(self) -> int:
        """Batches sent and not yet answered."""
        return len(self._in_flight)

    # ---------------------------------------------------------------------------------------
    # The caller's side

    async def submit(self, item: T, *, timeout_s: float | None = None) -> R:
        """Queue `item` and wait for its result; raises what its batch raised."""
        return await self.submit_nowait(item, timeout_s=timeout_s)

    def submit_nowait(self, item: T, *, timeout_s: float | None = None) -> asyncio.Future[R]:
        """Queue `item` and return the future of its result; overload raises here, at once."""
        loop = self._bind_loop()
        if self._state is not _State.OPEN:
            raise RuntimeError("this MicroBatcher is closed; create a new one to submit again")
        if timeout_s is not None:
            check_at_least("timeout_s", timeout_s, 0)
        if self._pending >= self.settings.max_queue_size:
            self.stats.rejected += 1
            raise OverloadedError(
                f"the queue is full ({self.settings.max_queue_size} items waiting)",
                retry_after_s=retry_after_s(self._pending, self.settings, self.stats),
            )
        now = self._clock.now()
        key = self._group_key(item) if self._group_key is not None else None
        pending: _Pending[T, R] = _Pending(item, loop.create_future(), key, now)
        self._groups.setdefault(key, deque()).append(pending)
        self._pending += 1
        self.stats.submitted += 1
        if timeout_s is not None:
            pending.deadline = self._clock.call_at(
                now + timeout_s, partial(self._expire, pending, timeout_s)
            )
        pending.future.add_done_callback(partial(self._on_answered, pending))
        self._maybe_dispatch(defer_idle=True)  # others may be submitted in this same turn
        return pending.future

    def flush(self) -> None:
        """Send what is queued now, full batch or not, as far as `max_concurrent_batches`
        allows (what is left goes as slots free, as usual). For a caller that knows nothing
        more is coming for a while, so that waiting `batch_wait_timeout_s` for the batch to
        fill could only add latency: the job pool's claimer once every worker holds a job."""
        self._bind_loop()
        while self._groups and len(self._in_flight) < self.settings.max_concurrent_batches:
            oldest = min(self._groups, key=lambda key: self._groups[key][0].enqueued_s)
            self._dispatch(oldest, "flush")
        self._maybe_dispatch()  # the timer, for whatever is still queued

    def _expire(self, pending: _Pending[T, R], timeout_s: float) -> None:
        if pending.future.done():
            return
        self.stats.expired += 1
        if pending.queued:  # leave the queue now: future callbacks run only later
            self._unqueue(pending)
            self._maybe_dispatch()
        pending.future.set_exception(RequestTimeoutError(f"no answer within {timeout_s} s"))

    def _on_answered(self, pending: _Pending[T, R], future: asyncio.Future[R]) -> None:
        """Runs once per item, whatever answered it: result, error, timeout or cancellation."""
        if pending.deadline is not None:
            pending.deadline.cancel()
        if future.cancelled():
            self.stats.cancelled += 1
        if pending.queued:  # answered while still queued (cancelled or expired): never sent
            self._unqueue(pending)
            self._maybe_dispatch()
        elif pending.batch is not None:
            batch = pending.batch
            batch.live -= 1
            if batch.live == 0 and batch.task is not None and not batch.task.done():
                batch.task.cancel()  # nobody is waiting for this batch any more

    def _unqueue(self, pending: _Pending[T, R]) -> None:
        group = self._groups.get(pending.key)
        if group is not None and pending in group:
            group.remove(pending)
            if not group:
                del self._groups[pending.key]
        pending.queued = False
        self._pending -= 1

    # ---------------------------------------------------------------------------------------
    # Deciding when to send

    def _maybe_dispatch(self, *, defer_idle: bool = False) -> None:
        """Send every batch that is due now. With `defer_idle` (a submit), a batch sent only
        because nothing is in flight waits for the end of this turn of the loop instead."""
        if self._loop is None:
            return
        now = self._clock.now()
        while len(self._in_flight) < self.settings.max_concurrent_batches:
            ready = self._ready_group(now)
            if ready is None:
                break
            if defer_idle and ready[1] == "idle":
                # A submit found the batcher idle: send at the end of this turn of the loop,
                # once, with whatever else is submitted in it. A lone caller pays one turn.
                if self._idle_check is None:
                    self._idle_check = self._loop.call_soon(self._on_idle_check)
                break
            self._dispatch(*ready)
        self._arm_timer()
        if self._idle is not None and not self._pending and not self._in_flight:
            self._idle.set()

    def _on_idle_check(self) -> None:
        self._idle_check = None
        self._maybe_dispatch()

    def _ready_group(self, now: float) -> tuple[Hashable, str] | None:
        """The group to send next and why, or None to keep waiting. Full groups go first,
        then the group whose oldest item is most overdue; the longest waiting when idle."""
        if not self._groups:
            return None
        oldest_first = sorted(self._groups, key=lambda key: self._groups[key][0].enqueued_s)
        for key in oldest_first:
            if len(self._groups[key]) >= self.settings.max_batch_size:
                return key, "full"
        if self._state is not _State.OPEN:
            return oldest_first[0], "shutdown"
        first = oldest_first[0]
        if (
            now + _TIMER_SLACK_S
            >= self._groups[first][0].enqueued_s + self.settings.batch_wait_timeout_s
        ):
            return first, "timeout"
        if self.settings.dispatch_when_idle and not self._in_flight:
            return first, "idle"
        return None

    def _arm_timer(self) -> None:
        """One timer, for the earliest time a group becomes overdue; none while slots are full
        (a finishing batch calls us anyway) or nothing waits."""
        due: float | None = None
        if self._groups and len(self._in_flight) < self.settings.max_concurrent_batches:
            oldest = min(group[0].enqueued_s for group in self._groups.values())
            due = oldest + self.settings.batch_wait_timeout_s
        if due == self._timer_due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_due = None, due
        if due is not None:
            self._timer = self._clock.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_due = None, None
        self._maybe_dispatch()

    # ---------------------------------------------------------------------------------------
    # Sending a batch and answering its callers

    def _dispatch(self, key: Hashable, reason: str) -> None:
        assert self._loop is not None
        group = self._groups[key]
        members: list[_Pending[T, R]] = []
        now = self._clock.now()
        while group and len(members) < self.settings.max_batch_size:
            pending = group[0]
            self._unqueue(pending)  # may delete an emptied group; `group` stays valid to read
            if pending.future.done():
                continue  # cancelled or expired a moment ago; its callback has not run yet
            members.append(pending)
            self.stats.queue_wait_s.append(now - pending.enqueued_s)
        if not members:
            return
        batch = _Batch(members, live=len(members), started_s=now)
        for pending in members:
            pending.batch = batch
        self.stats.batches += 1
        self.stats.batch_sizes[len(members)] += 1
        self.stats.flush_reasons[reason] += 1
        self._in_flight.add(batch)
        batch.task = self._loop.create_task(self._run(batch))
        # subtle: a done callback, not a `finally`, because a task cancelled before its first
        # step never runs its body at all, and the slot must be freed all the same.
        batch.task.add_done_callback(partial(self._on_batch_done, batch))

    async def _run(self, batch: _Batch) -> None:
        waiting = [p for p in batch.members if not p.future.done()]
        try:
            if waiting:
                results = await self._handler([p.item for p in waiting])
                answer(waiting, results, self.stats)
        except asyncio.CancelledError:
            fail(
                waiting, BatchFailedError("the batch was cancelled before it finished"), self.stats
            )
        except Exception as exc:
            fail(waiting, exc, self.stats)
        except BaseException as exc:
            fail(waiting, BatchFailedError(f"the batch handler raised {exc!r}"), self.stats)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise  # answered everyone; now let the process stop as asked
        # Free the slot and send the next batch now, from this task: the done callback below
        # would run a loop iteration later, and the accelerator would sit idle meanwhile.
        self._free_slot(batch)

    def _on_batch_done(self, batch: _Batch, task: asyncio.Task[None]) -> None:
        fail(
            batch.members, BatchFailedError("the batch was cancelled before it started"), self.stats
        )
        self._free_slot(batch)

    def _free_slot(self, batch: _Batch) -> None:
        """Runs once per batch, whichever comes first: the end of `_run`, or its done callback
        (the only one to run for a task cancelled before it started)."""
        if batch not in self._in_flight:
            return
        duration_s = self._clock.now() - batch.started_s
        mean = self.stats.mean_batch_duration_s
        self.stats.mean_batch_duration_s = duration_s if not mean else 0.8 * mean + 0.2 * duration_s
        self._in_flight.discard(batch)
        self._maybe_dispatch()

    # ---------------------------------------------------------------------------------------
    # Lifecycle

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        # Bind to the first loop that uses us. A notebook that re-runs a script with
        # asyncio.run() gets a new loop each time: start afresh there rather than fail.
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        if self._loop is not None and self._loop.is_running():
            raise RuntimeError("this MicroBatcher is in use by another running event loop")
        stats = self.stats
        self._reset()
        self.stats = stats
        self._loop = loop
        return loop

    async def aclose(self, *, drain: bool = True) -> None:
        """Stop taking items. With `drain`, send what is queued and wait for every answer;
        without, fail what is queued and cancel what is in flight (callers get errors).
        Any number of callers may close at once; each returns once the batcher is closed."""
        if self._state is _State.CLOSED or self._loop is None:
            self._state = _State.CLOSED
            return
        if not drain:
            self._fail_queued_and_cancel_in_flight()
        if self._idle is None:  # the first aclose(): from now on nothing new is taken
            self._state = _State.CLOSING
            self._idle = asyncio.Event()
            self._maybe_dispatch()
        # subtle: every concurrent aclose() waits on the one event the first one made; making
        # a new one each time would leave the earlier callers waiting on an event never set.
        await self._idle.wait()
        self._state = _State.CLOSED

    def _fail_queued_and_cancel_in_flight(self) -> None:
        for group in list(self._groups.values()):
            for pending in list(group):
                self._unqueue(pending)
                if not pending.future.done():
                    pending.future.set_exception(BatchFailedError("the batcher was closed"))
        for batch in list(self._in_flight):
            if batch.task is not None:
                batch.task.cancel()

    def close_from_thread(self, *, drain: bool = False, timeout_s: float = 10.0) -> None:
        """`aclose()` from another thread (a notebook's, a server's shutdown), waiting for it."""
        loop = self._loop
        if loop is not None and loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(self.aclose(drain=drain), loop)
            closing.result(timeout_s)

    async def __aenter__(self) -> MicroBatcher[T, R]:
        self._bind_loop()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        await self.aclose(drain=exc_type is None)
