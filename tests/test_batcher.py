"""MicroBatcher guarantees, each driven by events or a ManualClock, never by sleeping.

The handler below records every call and can be held at a gate, so a test decides exactly when
a batch finishes; `clock.advance()` decides exactly when timeouts pass.
"""

import asyncio

import pytest

from inferlab import (
    BatchFailedError,
    MicroBatcher,
    OverloadedError,
    RequestTimeoutError,
)
from inferlab.engine.clock import ManualClock

pytestmark = pytest.mark.anyio


class RecordingHandler:
    def __init__(self, *, gated: bool = False):
        self.calls: list[list] = []
        self.called = asyncio.Event()
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.cancelled = asyncio.Event()

    async def __call__(self, items):
        self.calls.append(list(items))
        self.called.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return [f"done:{item}" for item in items]


def make(handler, **options):
    clock = ManualClock()
    options = {"max_batch_size": 4, "batch_wait_timeout_s": 0.01, "clock": clock, **options}
    return MicroBatcher(handler, **options), clock


async def test_a_full_batch_is_sent_at_once():
    handler = RecordingHandler()
    batcher, _ = make(handler, dispatch_when_idle=False)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)))
    assert handler.calls == [[0, 1, 2, 3]]
    assert results == ["done:0", "done:1", "done:2", "done:3"]
    assert batcher.stats.flush_reasons == {"full": 1}


async def test_a_partial_batch_is_sent_when_its_oldest_item_has_waited_long_enough():
    """Wait 10 ms: at 9 ms nothing is sent; at 10 ms both items go, in one batch."""
    handler = RecordingHandler()
    batcher, clock = make(handler, dispatch_when_idle=False)
    futures = [batcher.submit_nowait("a")]
    clock.advance(0.004)
    futures.append(batcher.submit_nowait("b"))
    clock.advance(0.005)
    assert batcher.in_flight == 0 and batcher.pending == 2
    clock.advance(0.001)
    assert await asyncio.gather(*futures) == ["done:a", "done:b"]
    assert handler.calls == [["a", "b"]] and batcher.stats.flush_reasons == {"timeout": 1}
    assert list(batcher.stats.queue_wait_s) == pytest.approx([0.01, 0.006])


async def next_turn():
    """One turn of the event loop: an idle batcher sends what was submitted at its end."""
    await asyncio.sleep(0)


async def test_when_idle_what_one_turn_submits_goes_at_once_and_later_items_fill_the_next_batch():
    handler = RecordingHandler(gated=True)
    batcher, _ = make(handler)
    first = [batcher.submit_nowait(1), batcher.submit_nowait(2)]  # e.g. one gather
    assert batcher.in_flight == 0 and batcher.pending == 2  # not sent mid-turn: 1 waits for 2
    await next_turn()
    assert batcher.in_flight == 1 and batcher.pending == 0  # no waiting when nothing is in flight
    rest = [batcher.submit_nowait(i) for i in (3, 4, 5)]
    await next_turn()
    assert batcher.pending == 3  # a batch is in flight: these wait to share the next one
    handler.gate.set()
    await asyncio.gather(*first, *rest)
    assert handler.calls == [[1, 2], [3, 4, 5]]
    assert batcher.stats.flush_reasons == {"idle": 2}


async def test_idle_dispatch_happens_only_when_nothing_is_in_flight():
    """With two slots and one batch in flight, a new item waits for its timeout, not a slot."""
    handler = RecordingHandler(gated=True)
    batcher, clock = make(handler, max_concurrent_batches=2)
    first = batcher.submit_nowait(1)
    await next_turn()
    second = batcher.submit_nowait(2)
    await next_turn()
    assert (batcher.in_flight, batcher.pending) == (1, 1)
    clock.advance(0.01)
    assert (batcher.in_flight, batcher.pending) == (2, 0)
    handler.gate.set()
    await asyncio.gather(first, second)
    assert batcher.stats.flush_reasons == {"idle": 1, "timeout": 1}


async def test_an_overdue_batch_keeps_filling_until_a_dispatch_slot_is_free():
    """The slot is busy for 50 ms; items due at 10 ms wait, and the batch grows to 4."""
    handler = RecordingHandler(gated=True)
    batcher, clock = make(handler)
    busy = batcher.submit_nowait("busy")
    await next_turn()
    waiting = [batcher.submit_nowait(i) for i in range(2)]
    clock.advance(0.05)  # long past the 10 ms wait
    waiting += [batcher.submit_nowait(i) for i in range(2, 6)]
    assert batcher.in_flight == 1 and clock.pending_timers == 0
    handler.gate.set()
    await asyncio.gather(busy, *waiting)
    assert [len(call) for call in handler.calls] == [1, 4, 2]


async def test_an_idle_batcher_holds_no_timer_and_no_task():
    handler = RecordingHandler()
    batcher, clock = make(handler)
    await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert clock.pending_timers == 0
    assert batcher.in_flight == 0 and batcher.pending == 0


async def test_a_full_queue_refuses_at_once_with_a_retry_after():
    handler = RecordingHandler(gated=True)
    batcher, _ = make(handler, max_queue_size=2)
    first = batcher.submit_nowait(0)
    await next_turn()  # in flight, not queued
    queued = [batcher.submit_nowait(1), batcher.submit_nowait(2)]
    with pytest.raises(OverloadedError, match="queue is full") as refused:
        batcher.submit_nowait(3)
    assert refused.value.retry_after_s > 0 and batcher.stats.rejected == 1
    handler.gate.set()
    await asyncio.gather(first, *queued)
    assert [item for call in handler.calls for item in call] == [0, 1, 2]


async def test_an_item_whose_deadline_passes_in_the_queue_is_answered_and_never_sent():
    handler = RecordingHandler(gated=True)
    batcher, clock = make(handler)
    busy = batcher.submit_nowait("busy")
    await next_turn()
    doomed = batcher.submit_nowait("doomed", timeout_s=0.005)
    kept = batcher.submit_nowait("kept")
    clock.advance(0.005)
    with pytest.raises(RequestTimeoutError, match="0.005 s"):
        await doomed
    assert batcher.pending == 1
    handler.gate.set()
    await asyncio.gather(busy, kept)
    assert handler.calls == [["busy"], ["kept"]] and batcher.stats.expired == 1


async def test_a_cancelled_caller_is_removed_and_not_computed():
    handler = RecordingHandler(gated=True)
    batcher, _ = make(handler)
    busy = batcher.submit_nowait("busy")
    await next_turn()
    caller = asyncio.ensure_future(batcher.submit("gone"))
    kept = batcher.submit_nowait("kept")
    await asyncio.sleep(0)  # let the caller start waiting, then hang up
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    assert batcher.pending == 1  # its place in the queue is free again at once
    handler.gate.set()
    await asyncio.gather(busy, kept)
    assert handler.calls == [["busy"], ["kept"]] and batcher.stats.cancelled == 1


async def test_a_caller_cancelled_just_before_its_batch_is_sent_is_left_out():
    """subtle: cancel() answers the future at once but runs its callbacks later; the timer that
    sends the batch fires in between, so the batch itself must skip answered items."""
    handler = RecordingHandler()
    batcher, clock = make(handler, dispatch_when_idle=False)
    gone, kept = batcher.submit_nowait("gone"), batcher.submit_nowait("kept")
    gone.cancel()
    clock.advance(0.01)  # the flush happens here, before the cancellation callback runs
    assert await kept == "done:kept"
    assert handler.calls == [["kept"]]
    assert batcher.stats.batch_sizes == {1: 1}  # the cancelled item took no place in the batch


async def test_when_every_caller_of_a_batch_is_gone_the_handler_is_cancelled():
    handler = RecordingHandler(gated=True)
    batcher, _ = make(handler)
    callers = [asyncio.ensure_future(batcher.submit(i)) for i in range(2)]
    await handler.called.wait()
    for caller in callers:
        caller.cancel()
    await handler.cancelled.wait()
    await asyncio.gather(*callers, return_exceptions=True)
    # Its dispatch slot is free again (one batch at a time): the next item is sent and answered.
    # (Checking `in_flight` at once would race the cancelled task's own clean-up on 3.13.)
    handler.gate.set()
    assert await asyncio.wait_for(batcher.submit(9), 5) == "done:9"


async def test_a_handler_exception_reaches_every_caller_of_its_batch():
    async def broken(items):
        raise ConnectionError("upstream refused")

    batcher, _ = make(broken, dispatch_when_idle=False)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results) and batcher.stats.failed == 4


class Meltdown(BaseException):
    pass


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (lambda items: items[:-1], "returned 3 results for 4 items"),
        (lambda items: None, "returned NoneType results"),
        (lambda items: (_ for _ in ()).throw(asyncio.CancelledError()), "cancelled"),
        (lambda items: (_ for _ in ()).throw(Meltdown()), "Meltdown"),
    ],
    ids=["too few results", "not a list", "raises CancelledError", "raises BaseException"],
)
async def test_a_misbehaving_handler_still_answers_every_caller(behaviour, message):
    async def handler(items):
        return behaviour(items)

    batcher, _ = make(handler, dispatch_when_idle=False)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert all(isinstance(r, BatchFailedError) and message in str(r) for r in results)


async def test_closing_sends_what_is_pending_and_answers_it():
    handler = RecordingHandler()
    batcher, _ = make(handler, dispatch_when_idle=False, batch_wait_timeout_s=60)
    futures = [batcher.submit_nowait(i) for i in range(3)]
    await batcher.aclose()
    assert [f.result() for f in futures] == ["done:0", "done:1", "done:2"]
    assert batcher.stats.flush_reasons == {"shutdown": 1}
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit_nowait(4)


async def test_closing_without_draining_fails_what_is_pending_and_in_flight():
    handler = RecordingHandler(gated=True)
    batcher, _ = make(handler)
    in_flight, queued = batcher.submit_nowait(1), batcher.submit_nowait(2)
    await batcher.aclose(drain=False)
    for future in (in_flight, queued):
        with pytest.raises(BatchFailedError):
            future.result()


async def test_only_items_with_equal_group_keys_share_a_batch():
    handler = RecordingHandler()
    batcher, _ = make(handler, dispatch_when_idle=False, group_key=lambda item: item[0])
    items = ["a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4"]
    await asyncio.gather(*(batcher.submit(item) for item in items))
    assert sorted(handler.calls) == [["a1", "a2", "a3", "a4"], ["b1", "b2", "b3", "b4"]]


async def test_settings_change_while_running():
    handler = RecordingHandler(gated=True)
    batcher, _ = make(handler, dispatch_when_idle=False)
    futures = [batcher.submit_nowait(i) for i in range(2)]
    assert batcher.in_flight == 0
    batcher.configure(max_batch_size=2)  # the two waiting items now make a full batch
    assert batcher.in_flight == 1
    handler.gate.set()
    await asyncio.gather(*futures)
    with pytest.raises(ValueError, match="max_batch_size must be >= 1, got 0"):
        batcher.configure(max_batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        batcher.configure(batch_size=3)


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("max_batch_size", 2.5, TypeError),
        ("max_batch_size", True, TypeError),
        ("max_batch_size", "8", TypeError),
        ("max_queue_size", 1.0, TypeError),
        ("batch_wait_timeout_s", float("nan"), ValueError),
        ("batch_wait_timeout_s", float("inf"), ValueError),
        ("dispatch_when_idle", "no", TypeError),
    ],
)
def test_settings_of_the_wrong_type_are_refused_and_nothing_changes(setting, value, error):
    batcher = MicroBatcher(RecordingHandler(), max_batch_size=4)
    with pytest.raises(error, match=setting):
        batcher.configure(**{setting: value})
    assert batcher.settings.max_batch_size == 4
    with pytest.raises(error, match=setting):
        MicroBatcher(RecordingHandler(), **{setting: value})


async def test_two_concurrent_closes_both_return():
    """Two callers closing at once (a server's shutdown and a notebook's cell, say) both
    return once the batch in flight is answered; neither waits forever."""
    handler = RecordingHandler(gated=True)
    batcher, _ = make(handler)
    future = batcher.submit_nowait("a")
    await handler.called.wait()
    first = asyncio.create_task(batcher.aclose())
    second = asyncio.create_task(batcher.aclose())
    await asyncio.sleep(0)  # let both start waiting (a scheduling point, not a timed wait)
    assert not first.done() and not second.done()
    handler.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
    assert await future == "done:a"


def test_the_batcher_follows_a_new_event_loop():
    """A notebook re-running a script with asyncio.run() uses a fresh loop each time."""

    async def echo(items):
        return items

    batcher = MicroBatcher(echo, max_batch_size=2)
    for _ in range(2):
        assert asyncio.run(batcher.submit("x")) == "x"


async def test_async_with_drains_on_exit():
    handler = RecordingHandler()
    async with MicroBatcher(
        handler, max_batch_size=8, batch_wait_timeout_s=5, dispatch_when_idle=False
    ) as batcher:
        future = batcher.submit_nowait("late")
    assert future.result() == "done:late"


def test_changes_from_another_thread_all_apply_in_order():
    """Two quick changes from a widget thread: the second must not undo the first."""
    import threading

    async def echo(items):
        return items

    async def scenario():
        batcher = MicroBatcher(echo, max_batch_size=8)
        await batcher.submit("bind")  # the batcher now lives on this loop
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def from_widgets():
            batcher.configure(max_batch_size=1)
            batcher.configure(batch_wait_timeout_s=0.5)
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=from_widgets).start()
        await done.wait()
        return batcher.settings

    settings = asyncio.run(scenario())
    assert (settings.max_batch_size, settings.batch_wait_timeout_s) == (1, 0.5)


async def test_flush_sends_a_partial_batch_at_once_and_says_so():
    """Three items of a batch of eight, with a minute's wait to fill it: flush() sends the
    three now, as one batch, and counts the reason."""
    sizes = []

    async def handle(items):
        sizes.append(len(items))
        return [item * 2 for item in items]

    async with MicroBatcher(
        handle, max_batch_size=8, batch_wait_timeout_s=60, dispatch_when_idle=False
    ) as batcher:
        futures = [batcher.submit_nowait(i) for i in range(3)]
        batcher.flush()
        assert await asyncio.wait_for(asyncio.gather(*futures), 10) == [0, 2, 4]
    assert sizes == [3] and batcher.stats.flush_reasons["flush"] == 1
