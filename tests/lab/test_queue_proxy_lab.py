"""Autograder for lab 05: does your QueueProxy keep every promise the naive one broke?

Each check drives QueueProxy against a fake upstream (httpx.MockTransport) that answers each
prompt with "answer to <prompt>", its choices in reverse order (as a real batching server may:
only `index` says whose a choice is). It can also be slow, fail, or drop a choice. A proxy that
hangs fails after HANG_S with what the callers and the upstream saw, and a flusher that dies
fails at once with the line of your file it died on.

The time windows below are part of each scenario (when a request arrives, how slow the upstream
is, how long the proxy sits idle), never a wait for something to happen: those wait on events.
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from tests.lab.grading import broke, describe_exception

pytestmark = [pytest.mark.anyio, pytest.mark.lesson("05")]

HANG_S = 2.0  # a caller not answered by then is hung: every scenario here answers in < 1 s
FILE = "queue_proxy.py"


# --- the fake upstream and the flusher's wake-up counter -------------------------------------
class FakeUpstream:
    def __init__(self, *, fail: bool = False, drop_a_choice: bool = False, slow_s: float = 0.0):
        self.bodies: list[dict] = []
        self.fail, self.drop_a_choice, self.slow_s = fail, drop_a_choice, slow_s
        self.arrived = asyncio.Condition()

    async def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        async with self.arrived:
            self.bodies.append(body)
            self.arrived.notify_all()
        if self.slow_s:
            await asyncio.sleep(self.slow_s)  # the upstream's own slowness, part of the scenario
        if self.fail:
            return httpx.Response(500, json={"error": {"message": "the GPU fell over"}})
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = [
            {"index": i, "text": f"answer to {p}", "finish_reason": "length"}
            for i, p in enumerate(prompts)
        ]
        if self.drop_a_choice and len(choices) > 1:
            del choices[1]
        choices.reverse()  # any order is allowed: `index` says whose each choice is
        return httpx.Response(200, json={"object": "text_completion", "choices": choices})

    async def requests(self, count: int, *, within_s: float) -> bool:
        """Wait until `count` requests have arrived (True) or `within_s` passed (False)."""
        async with self.arrived:
            try:
                await asyncio.wait_for(
                    self.arrived.wait_for(lambda: len(self.bodies) >= count), within_s
                )
            except asyncio.TimeoutError:
                return False
        return True

    def prompts_sent(self) -> list:
        return [body["prompt"] for body in self.bodies]


class WakeCounter:
    """Counts each time the flusher task resumes, by driving its coroutine for it."""

    def __init__(self) -> None:
        self.count = 0

    def wrap(self, flush_forever: Callable[[], Coroutine[Any, Any, None]]):
        @types.coroutine
        def driven(coro):
            to_send, to_throw = None, None
            while True:
                try:
                    yielded = coro.throw(to_throw) if to_throw else coro.send(to_send)
                except StopIteration as stop:
                    return stop.value
                try:
                    to_send, to_throw = (yield yielded), None
                except BaseException as exc:  # cancellation goes on into the flusher
                    to_send, to_throw = None, exc
                self.count += 1

        async def counted() -> None:
            return await driven(flush_forever())

        return counted


def make_proxy(lab, upstream: FakeUpstream, **settings):
    return lab("queue_proxy").QueueProxy(
        "http://fake/v1",
        **settings,
        http=httpx.AsyncClient(transport=httpx.MockTransport(upstream.handler)),
    )


async def settle(proxy, callers: list[asyncio.Task], guarantee: str, look: str) -> list:
    """Each caller's answer or exception, once all are done; a hang or a dead flusher fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANG_S
    pending = set(callers)
    while pending:
        flusher = proxy._flusher
        watch = pending | ({flusher} if flusher is not None else set())
        time_left = max(0.0, deadline - loop.time())
        if flusher is None:  # the callers have not started it yet: look again soon
            time_left = min(time_left, 0.01)
        done, _ = await asyncio.wait(watch, timeout=time_left, return_when=asyncio.FIRST_COMPLETED)
        pending -= done
        if flusher is not None and flusher in done and pending:
            await asyncio.wait(pending, timeout=0.05)  # its last answers may still be landing
            pending = {task for task in pending if not task.done()}
            if pending:
                died = flusher.exception() if not flusher.cancelled() else None
                if isinstance(died, NotImplementedError):
                    raise died
                broke(
                    guarantee,
                    f"your flusher stopped while {len(pending)} of {len(callers)} callers were "
                    f"still waiting, so nobody will ever answer them.\n"
                    + (describe_exception(died) if died else "It returned or was cancelled."),
                    look,
                )
        if not done and (flusher is not None or loop.time() >= deadline):
            break
    results = [
        (task.exception() or task.result()) if task.done() and not task.cancelled() else task
        for task in callers
    ]
    for result in results:
        if isinstance(result, NotImplementedError):
            raise result
    if pending:
        broke(
            guarantee,
            f"{len(pending)} of {len(callers)} callers still had no answer after {HANG_S} s "
            f"(the upstream got prompts {summarise(proxy_upstream_prompts(proxy))}).",
            look,
        )
    return results


def proxy_upstream_prompts(proxy) -> list:
    return proxy._graded_upstream.prompts_sent()


def summarise(values: list, limit: int = 160) -> str:
    text = repr(values)
    return text if len(text) <= limit else text[:limit] + "...]"


class Run:
    """One scenario: a proxy on the fake upstream, its callers, and a clean end."""

    def __init__(self, lab, upstream: FakeUpstream, **settings):
        self.upstream = upstream
        self.proxy = make_proxy(lab, upstream, **settings)
        self.proxy._graded_upstream = upstream
        self.wakeups = WakeCounter()
        self.proxy._flush_forever = self.wakeups.wrap(self.proxy._flush_forever)
        self.callers: list[asyncio.Task] = []

    def ask(self, prompt: str) -> asyncio.Task:
        task = asyncio.ensure_future(self.proxy.complete(prompt))
        self.callers.append(task)
        return task

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self.callers:
            task.cancel()
        await asyncio.gather(*self.callers, return_exceptions=True)
        await self.proxy.aclose()


async def started(task: asyncio.Task) -> None:
    """Let a caller's task run up to its first wait, so its request is queued."""
    await asyncio.sleep(0)
    if task.done() and isinstance(task.exception(), NotImplementedError):
        raise task.exception()  # type: ignore[misc]


# --- the checks --------------------------------------------------------------------------------
async def test_each_caller_gets_the_answer_to_its_own_prompt(lab):
    """Each caller gets the answer to its own prompt (rule 2: a list of prompts, by `index`)."""
    guarantee = test_each_caller_gets_the_answer_to_its_own_prompt.__doc__.splitlines()[0]
    async with Run(lab, FakeUpstream(), batch_size=8, flush_interval_s=0.01) as run:
        prompts = [f"question {i}" for i in range(5)]
        for prompt in prompts:
            run.ask(prompt)
        answers = await settle(
            run.proxy, run.callers, guarantee, f"complete() and _send() in {FILE}"
        )
    sent = run.upstream.prompts_sent()
    if sent and not isinstance(sent[0], list):
        broke(
            guarantee,
            f"the upstream got prompt={summarise(sent[0])}, one string for five callers.",
            "_send(): pass prompt=[...], one entry per caller; one choice comes back for each.",
        )
    for i, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        if answer != f"answer to {prompt}":
            got = describe_exception(answer) if isinstance(answer, BaseException) else repr(answer)
            broke(
                guarantee,
                f"caller {i} asked {prompt!r} and got {got}.",
                "_send(): the upstream returns choices in any order (here, reversed); give each "
                "caller the choice whose choice['index'] is its position in the batch.",
            )


async def test_a_full_batch_goes_at_once_as_one_request(lab):
    """A full batch goes at once, as one upstream request (rule 3: full or due)."""
    guarantee = test_a_full_batch_goes_at_once_as_one_request.__doc__.splitlines()[0]
    async with Run(lab, FakeUpstream(), batch_size=4, flush_interval_s=60) as run:
        for i in range(4):  # one after another, so the flusher sees the batch fill up
            await started(run.ask(f"q{i}"))
            await asyncio.sleep(0)
        await settle(
            run.proxy,
            run.callers,
            guarantee,
            f"_flush_forever() in {FILE}: with batch_size=4, the fourth caller fills the batch; "
            "send it then, without waiting for the flush interval (60 s here).",
        )
    sizes = [len(prompts) for prompts in run.upstream.prompts_sent()]
    if sizes != [4]:
        broke(guarantee, f"upstream requests of {sizes} prompts, not one of 4.", "_flush_forever()")


async def test_a_lone_request_goes_once_its_flush_interval_has_passed(lab):
    """A lone request goes once it has waited flush_interval_s, though its batch never fills."""
    guarantee = test_a_lone_request_goes_once_its_flush_interval_has_passed.__doc__.splitlines()[0]
    async with Run(lab, FakeUpstream(), batch_size=8, flush_interval_s=0.05) as run:
        run.ask("alone")
        (answer,) = await settle(
            run.proxy,
            run.callers,
            guarantee,
            f"_flush_forever() in {FILE}: wait for a full batch, but only until the oldest "
            "request's deadline (arrival + flush_interval_s); then send what there is.",
        )
    if answer != "answer to alone":
        broke(guarantee, f"the lone caller got {answer!r}.", "_send()")


async def test_more_callers_than_a_batch_are_all_answered_in_batches(lab):
    """Ten callers with batch_size=4 are all answered, in batches of at most 4."""
    guarantee = test_more_callers_than_a_batch_are_all_answered_in_batches.__doc__.splitlines()[0]
    async with Run(lab, FakeUpstream(), batch_size=4, flush_interval_s=0.01) as run:
        for i in range(10):
            run.ask(f"q{i}")
        answers = await settle(
            run.proxy, run.callers, guarantee, "_flush_forever(): take at most batch_size each time"
        )
    sizes = [len(prompts) for prompts in run.upstream.prompts_sent()]
    if max(sizes) > 4:
        broke(guarantee, f"upstream batches of {sizes}.", "_flush_forever(): queue[:batch_size]")
    wrong = [i for i, answer in enumerate(answers) if answer != f"answer to q{i}"]
    if wrong:
        broke(guarantee, f"callers {wrong} got someone else's answer or none.", "_send()")


async def test_the_deadline_counts_from_the_oldest_arrival(lab):
    """A batch goes when its oldest request has waited flush_interval_s, however many joined it."""
    guarantee = test_the_deadline_counts_from_the_oldest_arrival.__doc__.splitlines()[0]
    interval = 0.3
    async with Run(lab, FakeUpstream(), batch_size=8, flush_interval_s=interval) as run:
        run.ask("A")  # due at 0.3 s
        await started(run.callers[0])
        await asyncio.sleep(0.2)  # the arrival schedule: B comes at 0.2 s
        run.ask("B")
        # C comes at 0.4 s, or as soon as a batch leaves, whichever is first
        await run.upstream.requests(1, within_s=0.2)
        run.ask("C")
        await settle(run.proxy, run.callers, guarantee, "_flush_forever()")
    first = run.upstream.prompts_sent()[0]
    if first != ["A", "B"]:
        broke(
            guarantee,
            f"A arrived at 0 s, B at 0.2 s, C at 0.4 s, with flush_interval_s={interval}: A's "
            f"batch was due at 0.3 s, before C came, but the first batch sent was {first}.",
            f"_flush_forever() in {FILE}: the deadline is the oldest request's arrival time plus "
            "flush_interval_s. It must not start again when a request arrives or the loop wakes.",
        )


async def test_a_request_arriving_during_a_send_keeps_its_own_deadline(lab):
    """A request that arrives while a batch is being sent is due flush_interval_s after ITS
    arrival, not after the send ends."""
    guarantee = test_a_request_arriving_during_a_send_keeps_its_own_deadline.__doc__
    guarantee = " ".join(guarantee.split())
    interval = 0.2
    upstream = FakeUpstream(slow_s=0.3)  # each upstream request takes 0.3 s
    async with Run(lab, upstream, batch_size=8, flush_interval_s=interval) as run:
        first = run.ask("A")
        await started(first)
        if not await upstream.requests(1, within_s=HANG_S):
            await settle(run.proxy, run.callers, guarantee, "_flush_forever()")
        run.ask("D")  # arrives while A's batch is being sent; due 0.2 s later, mid-send
        await settle(run.proxy, [first], guarantee, "_send()")
        # A's answer is back, and D is already overdue: it should leave now. E comes after
        # D's batch leaves, or 0.1 s from now, whichever is first.
        await upstream.requests(2, within_s=interval / 2)
        run.ask("E")
        await settle(run.proxy, run.callers, guarantee, "_flush_forever()")
    second = upstream.prompts_sent()[1]
    if second != ["D"]:
        broke(
            guarantee,
            f"D arrived while A's batch was at a slow upstream (0.3 s) and was overdue when the "
            f"send ended, yet the proxy waited again before sending it: the next batch was "
            f"{second}, with E, which came 0.1 s after the send ended.",
            f"_flush_forever() in {FILE}: compute the time left from the oldest queued request's "
            "own arrival time, each time round the loop; an overdue batch goes at once.",
        )


async def test_the_flusher_sleeps_while_idle(lab):
    """With nothing queued, the flusher sleeps until a request arrives: it does not poll."""
    guarantee = test_the_flusher_sleeps_while_idle.__doc__.splitlines()[0]
    async with Run(lab, FakeUpstream(), batch_size=8, flush_interval_s=0.01) as run:
        run.ask("wake up")
        await settle(run.proxy, run.callers, guarantee, "_flush_forever()")
        before = run.wakeups.count
        await asyncio.sleep(0.25)  # the idle window observed: nothing is queued during it
        idle_wakeups = run.wakeups.count - before
    if idle_wakeups > 3:
        broke(
            guarantee,
            f"with nothing queued, your flusher woke up {idle_wakeups} times in 0.25 s.",
            f"_flush_forever() in {FILE}: when the queue is empty, await the wake event that "
            "complete() sets (no asyncio.sleep tick): an idle proxy should cost nothing.",
        )


async def test_an_upstream_failure_reaches_every_caller(lab):
    """When the upstream fails, every caller of that batch gets an exception, none hangs."""
    guarantee = test_an_upstream_failure_reaches_every_caller.__doc__.splitlines()[0]
    look = f"_send() in {FILE}: on any exception, call set_exception() on every future"
    async with Run(lab, FakeUpstream(fail=True), batch_size=8, flush_interval_s=0.01) as run:
        for prompt in "abc":
            run.ask(prompt)
        results = await settle(run.proxy, run.callers, guarantee, look)
    answered = [result for result in results if not isinstance(result, BaseException)]
    if answered:
        broke(guarantee, f"the upstream answered 500, yet callers got {answered}.", look)


async def test_a_wrong_number_of_choices_fails_every_caller(lab):
    """When the upstream returns fewer choices than prompts, every caller gets an exception."""
    guarantee = test_a_wrong_number_of_choices_fails_every_caller.__doc__.splitlines()[0]
    look = (
        f"_send() in {FILE}: check that len(choices) == len(batch) before handing any out; "
        "if not, no choice can be trusted to be whose it says, so fail them all"
    )
    upstream = FakeUpstream(drop_a_choice=True)
    async with Run(lab, upstream, batch_size=3, flush_interval_s=60) as run:
        for i in range(3):
            run.ask(f"q{i}")
        results = await settle(run.proxy, run.callers, guarantee, look)
    answered = {i: r for i, r in enumerate(results) if not isinstance(r, BaseException)}
    if answered:
        broke(
            guarantee,
            f"the upstream returned 2 choices for 3 prompts, yet callers {sorted(answered)} "
            f"got answers {list(answered.values())}.",
            look,
        )


async def test_a_caller_that_gives_up_does_not_break_its_batch(lab):
    """A caller that gives up while its batch is in flight does not stop the others' answers."""
    guarantee = test_a_caller_that_gives_up_does_not_break_its_batch.__doc__.splitlines()[0]
    look = (
        f"_send() in {FILE}: the future of a caller that gave up is already done (cancelled); "
        "set_result() on it raises InvalidStateError. Skip futures that are done."
    )
    upstream = FakeUpstream(slow_s=0.1)
    async with Run(lab, upstream, batch_size=3, flush_interval_s=60) as run:
        a, b, c = run.ask("A"), run.ask("B"), run.ask("C")
        if not await upstream.requests(1, within_s=HANG_S):
            await settle(run.proxy, run.callers, guarantee, "_flush_forever()")
        b.cancel()  # B gives up while the batch is at the upstream
        await asyncio.gather(b, return_exceptions=True)
        results = await settle(run.proxy, [a, c], guarantee, look)
    if results != ["answer to A", "answer to C"]:
        broke(guarantee, f"after B gave up, A and C got {results}.", "_send(): by `index`")


async def test_a_caller_that_gives_up_frees_its_place(lab):
    """A caller that gives up before its batch leaves frees its place: nobody waits for it."""
    guarantee = test_a_caller_that_gives_up_frees_its_place.__doc__.splitlines()[0]
    look = (
        f"complete() in {FILE}: when `await future` raises asyncio.CancelledError, take this "
        "request out of self.queue (if it is still there), then re-raise"
    )
    async with Run(lab, FakeUpstream(), batch_size=2, flush_interval_s=60) as run:
        gave_up = run.ask("gave up")
        await started(gave_up)
        gave_up.cancel()
        await asyncio.gather(gave_up, return_exceptions=True)
        b, c = run.ask("B"), run.ask("C")
        try:
            await settle(run.proxy, [b, c], guarantee, look)
        except pytest.fail.Exception:
            broke(
                guarantee,
                f"with batch_size=2, a caller gave up, then B and C came: they make a full batch, "
                f"but after {HANG_S} s the upstream had got only {run.upstream.prompts_sent()}.",
                look,
            )
    sent = [prompt for prompts in run.upstream.prompts_sent() for prompt in prompts]
    if "gave up" in sent:
        broke(guarantee, f"the upstream got {run.upstream.prompts_sent()}.", look)
