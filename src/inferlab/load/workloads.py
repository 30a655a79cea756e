"""Workloads: what a load run sends, as token counts drawn from distributions, seeded.

    Workload(num_requests=100, prompt_tokens=fixed(512), output_tokens=exponential(128, 1024))

Output lengths matter more than they look: with static batching a batch lasts as long as its
longest answer, so an exponential spread of lengths (Anyscale's benchmark shape: mean 128,
capped) is what makes continuous batching win. Prompts are made of filler words, exactly
`prompt_tokens` long under the course's token rule, and start with the request's number so no
two are the same.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lengths:
    """A distribution of token counts: fixed, uniform, or exponential with a cap."""

    kind: str
    a: int
    b: int = 0

    def sample(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.randint(self.a, self.b)
        # exponential with mean a, capped at b: the shape of Anyscale's benchmark outputs
        return max(1, min(self.b, round(rng.expovariate(1 / self.a))))

    @classmethod
    def parse(cls, text: str) -> Lengths:
        """'128' or 'fixed:128', 'uniform:64:256', 'exp:128:1024' (mean 128, cap 1024)."""
        parts = text.split(":")
        if len(parts) == 1:
            return fixed(int(parts[0]))
        kind, *numbers = parts
        makers: dict[str, Callable[..., Lengths]] = {
            "fixed": fixed,
            "uniform": uniform,
            "exp": exponential,
        }
        if kind not in makers:
            raise ValueError(f"unknown length distribution {kind!r}; use fixed, uniform or exp")
        return makers[kind](*map(int, numbers))


def fixed(tokens: int) -> Lengths:
    return Lengths("fixed", tokens)


def uniform(low: int, high: int) -> Lengths:
    return Lengths("uniform", low, high)


def exponential(mean: int, cap: int | None = None) -> Lengths:
    return Lengths("exp", mean, cap or mean * 8)


_FILLER = "the quick brown fox jumps over a lazy dog while batching keeps every GPU busy".split()


@dataclass(frozen=True)
class PlannedRequest:
    index: int
    prompt: str
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class Workload:
    """What to send: `num_requests` prompts and output lengths, the same for the same seed."""

    num_requests: int = 100
    prompt_tokens: Lengths = field(default_factory=lambda: fixed(64))
    output_tokens: Lengths = field(default_factory=lambda: fixed(64))
    seed: int = 0

    def requests(self) -> list[PlannedRequest]:
        rng = random.Random(self.seed)
        planned = []
        for index in range(self.num_requests):
            length = max(2, self.prompt_tokens.sample(rng))
            words = [f"Request{index}"] + [_FILLER[i % len(_FILLER)] for i in range(length - 1)]
            planned.append(
                PlannedRequest(index, " ".join(words), length, self.output_tokens.sample(rng))
            )
        return planned


def arrival_gaps(request_rate: float, *, burstiness: float = 1.0, seed: int = 0) -> Iterator[float]:
    """Endless gaps between arrivals, in seconds, for an open loop at `request_rate`/s: gamma
    distributed with shape `burstiness` (1 is a Poisson process, lower is burstier), as in vLLM's
    benchmark. The load generator and offline simulations draw from the same stream."""
    rng = random.Random(seed)
    while True:
        yield rng.gammavariate(burstiness, 1 / (request_rate * burstiness))


def arrival_times(
    num_requests: int, request_rate: float, *, burstiness: float = 1.0, seed: int = 0
) -> list[float]:
    """The first `num_requests` arrival times (the first at 0 s): arrival_times(3, 2.0) are 0 s
    and then two gaps of half a second on average."""
    gaps = arrival_gaps(request_rate, burstiness=burstiness, seed=seed)
    return list(itertools.accumulate((next(gaps) for _ in range(num_requests - 1)), initial=0.0))
