"""SimulatedModel: an LLM engine whose accelerator is a clock and a measured cost model.

It is built like vLLM's engine loop, minus the GPU: requests wait in a queue, a step loop admits
them by the batching policy (see `scheduler.py`), sleeps for as long as that step would take on
the profiled hardware (times `time_scale`), then hands one token to every running sequence.

    model = SimulatedModel("h100-llama3-8b", batching="continuous", time_scale=0.1)
    async for token in model.generate("Hello", max_tokens=8):
        print(token.text, token.finish_reason)

Left out on purpose: real weights, logits and sampling. The text comes from `text.py`; each
caller's channel and stop strings live in `_streams.py`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple, Protocol

from ..errors import InvalidRequestError
from ._streams import Stream
from .clock import ScaledClock
from .config import Batching, SchedulerConfig
from .profiles import DEFAULT_PROFILE, Profile, get_profile
from .scheduler import Scheduler, Sequence, Step
from .text import count_tokens, token_ids


class Clock(Protocol):
    time_scale: float

    def now(self) -> float: ...

    async def sleep_until(self, when_s: float) -> None: ...


class Token(NamedTuple):
    """One generated token as a caller sees it. `finish_reason` is set on the last one only.

    `text` can be "" when the token is end-of-sequence, or is held back because it might be the
    start of a stop string. A NamedTuple rather than a dataclass: one is made per token per
    sequence per step, so it must be cheap to create.
    """

    text: str
    finish_reason: str | None = None  # "length" or "stop", as in OpenAI's API
    time_s: float = 0.0  # simulated time at which the step that produced it ended
    end_of_sequence: bool = False  # the model's own stop marker: a step, but no text
    # On the last token only: when the sequence arrived and when a step first took it, on the
    # engine's clock, so the server can report the engine's own account of the request.
    arrival_s: float | None = None
    queued_s: float | None = None  # when the API server handed it to the engine's queue
    admitted_s: float | None = None


class SimulatedModel:
    """A simulated LLM engine: continuous, static or no batching over a timing profile."""

    def __init__(
        self,
        profile: str | Profile = DEFAULT_PROFILE,
        *,
        batching: Batching | str = Batching.CONTINUOUS,
        max_num_seqs: int = 256,
        kv_capacity_tokens: int | None = None,
        time_scale: float = 1.0,
        clock: Clock | None = None,
        name: str | None = None,
        # vLLM's engine settings under vLLM's names (see config.py)
        max_num_batched_tokens: int = 8192,
        enable_chunked_prefill: bool = True,
        block_size: int = 16,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = False,
        num_gpu_blocks_override: int | None = None,
        max_model_len: int | None = None,
        api_server_cost: float = 1.0,  # the front end's work (api_server.py); 0: none
        num_scheduler_steps: int = 1,  # vLLM 0.x's multi-step decoding (multi_step.py)
    ):
        self.profile = get_profile(profile).with_api_server_cost(api_server_cost)
        if max_model_len is not None:  # vLLM's --max-model-len: a shorter context window
            self.profile = self.profile.with_overrides(max_model_len=max_model_len)
        self.name = name or self.profile.name
        self.clock: Clock = clock or ScaledClock(time_scale)
        config = SchedulerConfig(
            batching=Batching(batching),
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            enable_chunked_prefill=enable_chunked_prefill,
            block_size=block_size,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
            kv_capacity_tokens=kv_capacity_tokens,
            num_gpu_blocks_override=num_gpu_blocks_override,
            num_scheduler_steps=num_scheduler_steps,
        )
        self.scheduler = Scheduler(self.profile, config)
        self.lag_s = 0.0  # how far the wall clock ran behind the last step's deadline
        self.max_lag_s = 0.0  # the worst lag since the model last went busy after being idle
        self.last_error: Exception | None = None  # why the step loop last crashed, if it did
        self.step_listeners: list[Callable[[Step], None]] = []
        self._streams: dict[Sequence, Stream] = {}
        # requests still in the API server, in arrival order: (when they reach the queue, seq)
        self._arriving: deque[tuple[float, Sequence]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @property
    def time_scale(self) -> float:
        return self.clock.time_scale

    def configure(
        self,
        *,
        batching: Batching | str | None = None,
        max_num_seqs: int | None = None,
        kv_capacity_tokens: int | None = None,
        max_num_batched_tokens: int | None = None,
        enable_chunked_prefill: bool | None = None,
        enable_prefix_caching: bool | None = None,
        gpu_memory_utilization: float | None = None,
        time_scale: float | None = None,
    ) -> None:
        """Change the batching policy or limits while the model runs (next step on); the KV
        pool's size (`kv_capacity_tokens`, `gpu_memory_utilization`) and the speed of a scaled
        clock (`time_scale`) only while it is idle."""
        if time_scale is not None and time_scale != self.time_scale:
            if not isinstance(self.clock, ScaledClock):
                raise ValueError("time_scale can change only on a scaled clock")
            if self.num_running or self.num_waiting or self._arriving:
                raise ValueError("time_scale can change only while the model is idle")
            self.clock.rescale(time_scale)
        changes = {
            "batching": batching,
            "max_num_seqs": max_num_seqs,
            "kv_capacity_tokens": kv_capacity_tokens,
            "max_num_batched_tokens": max_num_batched_tokens,
            "enable_chunked_prefill": enable_chunked_prefill,
            "enable_prefix_caching": enable_prefix_caching,
            "gpu_memory_utilization": gpu_memory_utilization,
        }
        self.scheduler.configure(**{k: v for k, v in changes.items() if v is not None})

    def reset_prefix_cache(self) -> bool:
        """Empty the prefix cache, as vLLM's POST /reset_prefix_cache; False while busy."""
        return self.scheduler.reset_prefix_cache()

    # ---------------------------------------------------------------------------------------
    # The caller's side

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        """Raise InvalidRequestError now if such a request could never run."""
        self.scheduler.check(Sequence(prompt_tokens=prompt_tokens, max_tokens=max_tokens))

    async def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
        ignore_eos: bool = False,
        prompt_tokens: int | None = None,
    ) -> AsyncIterator[Token]:
        """Yield one `Token` per generated token; the last carries the finish reason.

        Raises InvalidRequestError at once if the request could never fit. Closing the
        iterator early (a client that hung up) frees the sequence's place in the batch.
        """
        seq = Sequence(
            prompt_tokens=count_tokens(prompt) if prompt_tokens is None else prompt_tokens,
            max_tokens=max_tokens,
            arrival_s=self.clock.now(),
            prompt_token_ids=token_ids(prompt),  # what prefix caching hashes
        )
        self._ensure_running()
        self.scheduler.check(seq)
        # the API server parses and tokenizes it first; the step loop queues it when done.
        # subtle: the step loop does the waiting, not this caller, so a virtual clock (one
        # sleeper at a time) keeps the same timeline as simulate().
        previous_s = self._arriving[-1][0] if self._arriving else 0.0
        queued_s = self.profile.api_server.queued_s(seq.arrival_s, seq.prompt_tokens, previous_s)
        self._arriving.append((queued_s, seq))
        stream = Stream(prompt, seed, temperature, stop or [], ignore_eos)
        self._streams[seq] = stream
        assert self._wake is not None
        self._wake.set()
        finished = False
        try:
            while not finished:
                item = await stream.channel.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finish_reason is not None
                yield item
        finally:
            if not finished:  # the caller stopped listening: stop computing for it
                self.scheduler.remove(seq)
                self._forget_arriving(seq)
            self._streams.pop(seq, None)

    @property
    def num_running(self) -> int:
        return len(self.scheduler.running)

    @property
    def num_waiting(self) -> int:
        return len(self.scheduler.waiting)

    async def aclose(self) -> None:
        """Stop the step loop; anyone still waiting for tokens gets a RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # ---------------------------------------------------------------------------------------
    # The accelerator's side

    def _ensure_running(self) -> None:
        # Bind to whichever event loop calls first; a notebook that restarts its server (a new
        # loop) gets a fresh step loop instead of one stuck on a dead loop.
        loop = asyncio.get_running_loop()
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        if self._loop is not loop:  # their readers died with the old loop: forget them
            self._streams.clear()
            self._arriving.clear()
        self._loop = loop
        self._wake = asyncio.Event()
        for seq in [*self.scheduler.waiting, *self.scheduler.running]:
            self.scheduler.remove(seq)  # gives their KV blocks back
        self._task = loop.create_task(self._step_loop(), name=f"{self.name} step loop")

    async def _step_loop(self) -> None:
        assert self._wake is not None
        try:
            step_start_s = self.clock.now()
            while True:
                self._queue_arrivals()
                step = self.scheduler.plan_step(step_start_s)
                if step is None:
                    self.max_lag_s = 0.0
                    if self._arriving:  # the API server is still busy with a request
                        # subtle: the step starts when it reaches the queue, not when this loop
                        # wakes, so a late wake-up is not counted as queue time
                        step_start_s = self._arriving[0][0]
                        await self.clock.sleep_until(step_start_s)
                        continue
                    self._wake.clear()
                    await self._wake.wait()  # idle: no CPU until a request arrives
                    step_start_s = self.clock.now()
                    continue
                deadline_s = step.start_s + step.duration_s
                await self.clock.sleep_until(deadline_s)
                self.lag_s = max(0.0, self.clock.now() - deadline_s)
                self.max_lag_s = max(self.max_lag_s, self.lag_s)
                # the API server's output processing (see Step) delays the tokens. subtle:
                # only a wait asyncio can time: it rounds a shorter one up to 1 ms, which read
                # at time_scale 0.2 is a 5 ms stutter; below that they leave at the step's end,
                # under 1 ms of wall time before the moment they are stamped with.
                if step.delivery_s * self.clock.time_scale >= _TIMER_RESOLUTION_S:
                    await self.clock.sleep_until(deadline_s + step.delivery_s)
                self._emit(step)
                # subtle: the next step starts at this step's deadline, not at "now", so the
                # simulated timeline stays exact even when the wall clock wakes a little late.
                step_start_s = deadline_s
        except asyncio.CancelledError as exc:  # aclose(): answer the waiting, then stop
            self._fail_everyone(exc)
            raise
        except Exception as exc:
            # Everyone waiting gets the error; the next request starts a fresh step loop.
            self.last_error = exc
            self._fail_everyone(exc)

    def _queue_arrivals(self) -> None:
        """Hand the scheduler every request the API server has finished with by now."""
        now_s = self.clock.now()
        while self._arriving and self._arriving[0][0] <= now_s:
            queued_s, seq = self._arriving.popleft()
            stream = self._streams.get(seq)
            if stream is None:
                continue  # its caller went away meanwhile
            try:
                self.scheduler.add(seq, queued_s)
            except InvalidRequestError as exc:  # the pool shrank since generate() checked
                stream.channel.put(exc)

    def _forget_arriving(self, seq: Sequence) -> None:
        if any(item[1] is seq for item in self._arriving):
            self._arriving = deque(item for item in self._arriving if item[1] is not seq)

    def _emit(self, step: Step) -> None:
        """Hand each sequence of the finished step its token (its burst's tokens, with
        --num-scheduler-steps) and retire the finished ones."""
        end_s = step.start_s + step.duration_s + step.delivery_s
        tokens: dict[Sequence, list[Token]] = {}
        stopped_early: dict[Sequence, int] = {}  # -> how many tokens it took before stopping
        for seq in step.sequences:
            stream = self._streams.get(seq)
            if stream is None:
                continue
            count = step.scheduled[seq] if step.num_steps > 1 else 1
            try:
                taken = [self._next_token(stream, end_s)]
                while len(taken) < count and taken[-1].finish_reason is None:
                    taken.append(self._next_token(stream, end_s))
            except Exception as exc:
                # One sequence's failure is its own: it leaves the batch, the others go on.
                self.scheduler.remove(seq)
                stream.channel.put(_failure("this sequence failed", exc))
                continue
            if taken[-1].finish_reason == "stop":
                stopped_early[seq] = len(taken)
            tokens[seq] = taken
        for seq in self.scheduler.finish_step(step, stopped_early):
            taken = tokens.get(seq, [])
            if taken and taken[-1].finish_reason is None:
                text = taken[-1].text + self._streams[seq].matcher.flush()
                taken[-1] = Token(text, "length", end_s)
        for seq, taken in tokens.items():
            last = taken[-1]
            if last.finish_reason is not None:
                taken[-1] = last._replace(
                    arrival_s=seq.arrival_s, queued_s=seq.queued_s, admitted_s=seq.admitted_s
                )
            channel = self._streams[seq].channel
            for token in taken:
                channel.put(token)
        for listener in self.step_listeners:
            listener(step)

    @staticmethod
    def _next_token(stream: Stream, end_s: float) -> Token:
        """The sequence's token of this step: text, end-of-sequence, or a stop string's end."""
        piece = next(stream.tokens)
        if piece is None and not stream.ignore_eos:
            return Token(stream.matcher.flush(), "stop", end_s, end_of_sequence=True)
        text, matched = stream.matcher.feed(piece or "")
        return Token(text, "stop" if matched else None, end_s)

    def _fail_everyone(self, exc: BaseException) -> None:
        for stream in self._streams.values():
            stream.channel.put(_failure("the simulated accelerator stopped", exc))


_TIMER_RESOLUTION_S = 0.001  # asyncio's selector waits in whole milliseconds (epoll_wait)


def _failure(what: str, cause: BaseException) -> RuntimeError:
    """A fresh error per waiting reader. subtle: raising one exception object in many tasks
    appends every raise's frames to its one traceback, which then grows without end."""
    error = RuntimeError(f"{what} ({cause!r})")
    error.__cause__ = cause
    return error
