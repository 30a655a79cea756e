"""The scheduler of the simulated accelerator: who runs in the next step, and what it costs.

Pure bookkeeping, no clock and no asyncio, so it can be driven in real time by `SimulatedModel`
or in virtual time by `simulate()` below, with exactly the same decisions. One step:

    1. admit waiting sequences, as the batching policy allows;
    2. cost = overhead + prefill(newly admitted prompts) + decode(sequences already running);
    3. after that time, every running sequence has one more token; finished ones leave.

Notice step 2: admitting newcomers makes the running sequences wait for their prefill, as in
vLLM without chunked prefill (a prefill pass, then a decode pass). Chunked prefill exists to
soften exactly that stall.

Policies: `none` runs one sequence at a time; `static` admits a new batch only when the previous
one has entirely finished; `continuous` admits at every step while `max_num_seqs` and the KV cache
allow. The waiting queue is FIFO: a sequence that does not fit blocks those behind it, so nothing
starves. KV is reserved for prompt + max_tokens at admission, so nothing is ever preempted
(vLLM instead allocates pages as tokens arrive and preempts when they run out).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from ..errors import InvalidRequestError
from .profiles import Profile


class Batching(str, Enum):
    NONE = "none"
    STATIC = "static"
    CONTINUOUS = "continuous"


@dataclass(eq=False)
class Sequence:
    """One generation request as the scheduler sees it (times are simulated seconds)."""

    prompt_tokens: int
    max_tokens: int
    arrival_s: float = 0.0
    generated: int = 0
    admitted_s: float | None = None
    first_token_s: float | None = None
    finished_s: float | None = None
    batch_id: int | None = None  # the step that admitted it: sequences sharing one rode together

    @property
    def context_len(self) -> int:
        return self.prompt_tokens + self.generated

    @property
    def kv_reserved(self) -> int:
        return self.prompt_tokens + self.max_tokens


@dataclass
class Step:
    """What one step does: prefill the newly admitted, decode the rest, all in `duration_s`."""

    index: int
    start_s: float
    duration_s: float
    prefill: list[Sequence]
    decode: list[Sequence]
    waiting: int  # still queued after admission
    kv_used_tokens: int

    @property
    def batch_size(self) -> int:
        return len(self.prefill) + len(self.decode)

    @property
    def sequences(self) -> list[Sequence]:
        return self.prefill + self.decode


@dataclass
class Scheduler:
    profile: Profile
    batching: Batching = Batching.CONTINUOUS
    max_num_seqs: int = 256
    kv_capacity_tokens: int | None = None  # None: the profile's
    waiting: deque[Sequence] = field(default_factory=deque)
    running: list[Sequence] = field(default_factory=list)
    steps_done: int = 0

    def __post_init__(self) -> None:
        self.configure(self.batching, self.max_num_seqs, self.kv_capacity_tokens)

    def configure(
        self, batching: Batching | str, max_num_seqs: int, kv_capacity_tokens: int | None
    ) -> None:
        """Change the policy or limits; takes effect at the next admission."""
        if max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {max_num_seqs}")
        if kv_capacity_tokens is not None and kv_capacity_tokens < 1:
            raise ValueError(f"kv_capacity_tokens must be >= 1, got {kv_capacity_tokens}")
        self.batching = Batching(batching)
        self.max_num_seqs = max_num_seqs
        self.kv_capacity_tokens = kv_capacity_tokens

    @property
    def kv_capacity(self) -> int:
        return self.kv_capacity_tokens or self.profile.kv_capacity_tokens

    @property
    def kv_used_tokens(self) -> int:
        return sum(seq.kv_reserved for seq in self.running)

    def add(self, seq: Sequence) -> None:
        """Queue a sequence, or raise InvalidRequestError if it could never run."""
        self.check(seq)
        self.waiting.append(seq)

    def check(self, seq: Sequence) -> None:
        """Raise InvalidRequestError if `seq` exceeds the context window or the KV cache."""
        limit = self.profile.max_model_len
        if seq.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {seq.max_tokens}")
        if seq.kv_reserved > limit:
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{seq.kv_reserved} tokens ({seq.prompt_tokens} in the prompt, {seq.max_tokens} "
                "in the completion). Please reduce the prompt or max_tokens.",
                code="context_length_exceeded",
            )
        if seq.kv_reserved > self.kv_capacity:
            raise InvalidRequestError(
                f"the request needs {seq.kv_reserved} KV-cache tokens but the cache holds only "
                f"{self.kv_capacity}; reduce the prompt or max_tokens"
            )

    def remove(self, seq: Sequence) -> None:
        """Forget a sequence wherever it is (finished early, or its caller went away)."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _admit(self, now_s: float) -> list[Sequence]:
        if self.batching is not Batching.CONTINUOUS and self.running:
            return []  # none and static wait for the whole running batch to finish
        room = 1 if self.batching is Batching.NONE else self.max_num_seqs - len(self.running)
        kv_free = self.kv_capacity - self.kv_used_tokens
        admitted: list[Sequence] = []
        while self.waiting and len(admitted) < room and self.waiting[0].kv_reserved <= kv_free:
            seq = self.waiting.popleft()
            kv_free -= seq.kv_reserved
            seq.admitted_s = now_s
            seq.batch_id = self.steps_done
            admitted.append(seq)
        return admitted

    def plan_step(self, now_s: float) -> Step | None:
        """Admit what the policy allows and price the step; None when there is nothing to do."""
        decode = list(self.running)
        prefill = self._admit(now_s)
        self.running.extend(prefill)
        if not self.running:
            return None
        cost_ms = (
            self.profile.step_overhead_ms
            + self.profile.prefill_ms([seq.prompt_tokens for seq in prefill])
            + self.profile.decode_ms([seq.context_len for seq in decode])
        )
        return Step(
            index=self.steps_done,
            start_s=now_s,
            duration_s=cost_ms / 1000.0,
            prefill=prefill,
            decode=decode,
            waiting=len(self.waiting),
            kv_used_tokens=self.kv_used_tokens,
        )

    def finish_step(self, step: Step, stopped_early: Iterable[Sequence] = ()) -> list[Sequence]:
        """Credit every sequence of `step` with one token; return those that are now done.

        `stopped_early` are sequences whose token this step was end-of-sequence or completed a
        stop string: they leave even though max_tokens is not reached.
        """
        end_s = step.start_s + step.duration_s
        early = set(stopped_early)
        done: list[Sequence] = []
        for seq in step.sequences:
            if seq not in self.running:
                continue  # removed while the step ran (its caller went away)
            seq.generated += 1
            if seq.first_token_s is None:
                seq.first_token_s = end_s
            if seq.generated >= seq.max_tokens or seq in early:
                seq.finished_s = end_s
                self.running.remove(seq)
                done.append(seq)
        self.steps_done += 1
        return done


def simulate(
    requests: Iterable[tuple[float, int, int]],
    profile: Profile,
    *,
    batching: Batching | str = Batching.CONTINUOUS,
    max_num_seqs: int = 256,
    kv_capacity_tokens: int | None = None,
) -> list[Sequence]:
    """Run the scheduler in virtual time over `(arrival_s, prompt_tokens, output_tokens)` tuples.

    Returns one finished `Sequence` per request, in input order, with its admission, first-token
    and finish times. Every request generates exactly `output_tokens` tokens (as with vLLM's
    `ignore_eos`), so the result is a pure function of the inputs:

        simulate([(0, 100, 2)], profile) -> one Sequence, first_token_s = prefill(100) ms,
                                            finished_s = that + decode([101]) ms
    """
    scheduler = Scheduler(profile, Batching(batching), max_num_seqs, kv_capacity_tokens)
    sequences = [
        Sequence(prompt_tokens=prompt, max_tokens=output, arrival_s=arrival)
        for arrival, prompt, output in requests
    ]
    pending = deque(sorted(sequences, key=lambda seq: seq.arrival_s))
    now_s = 0.0
    while pending or scheduler.has_work():
        while pending and pending[0].arrival_s <= now_s:
            scheduler.add(pending.popleft())
        step = scheduler.plan_step(now_s)
        if step is None:
            now_s = pending[0].arrival_s  # idle: jump to the next arrival
            continue
        now_s = step.start_s + step.duration_s
        scheduler.finish_step(step)
    return sequences
