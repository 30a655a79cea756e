"""One timing record for one request, and the one definition of each latency metric.

The definitions are those of `vllm bench serve`, so a figure here means what it means there:

    TTFT  time to first token    first chunk with text - sent      (no stream: the whole answer)
    E2E   end-to-end latency     done - sent
    ITL   inter-token latency    each gap between chunks that carried text
    TPOT  time per output token  (done - first token) / (output tokens - 1), over tokens, not
                                 chunks; None when the answer was not streamed, since a client
                                 that gets it all at once cannot see the time between tokens

The client fills a `Timing` (`Completion.timing`); the load generator's `RequestResult` is a
`Timing` with the run's bookkeeping added, so both read the same properties.

A server of this course also says what its engine measured on its own clock, in simulated
seconds: an `EngineTiming`, read from the response (TGI's `x-queue-time` headers are the
anchor; a stream carries it in its last chunk). That is the request's time on the H100 the
engine simulates, whatever the laptop running the client was doing meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from ..engine.timing import EngineTiming


@dataclass
class Timing:
    """Moments of one request, in `time.perf_counter()` seconds.

    >>> t = Timing(sent_s=0.0, done_s=0.5, first_token_s=0.1,
    ...            token_times_s=[0.1, 0.2, 0.3, 0.5], output_tokens=5)
    >>> round(t.ttft_s, 3), round(t.tpot_s, 3), [round(gap, 3) for gap in t.itl_s]
    (0.1, 0.1, [0.1, 0.1, 0.2])
    """

    sent_s: float = 0.0
    done_s: float = 0.0
    first_token_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)  # each chunk that carried text
    output_tokens: int = 0  # completion tokens as the server counted them (else: chunks)
    engine: EngineTiming | None = None  # what the server's engine measured, if it says

    @property
    def ttft_s(self) -> float:
        """Time to first token; for a non-streamed call, the whole answer is the first token."""
        first = self.first_token_s if self.first_token_s is not None else self.done_s
        return first - self.sent_s

    @property
    def e2e_latency_s(self) -> float:
        return self.done_s - self.sent_s

    @property
    def itl_s(self) -> list[float]:
        """Inter-token latencies: the gap before each chunk after the first."""
        return [later - earlier for earlier, later in pairwise(self.token_times_s)]

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first; None unless streamed with two tokens or more."""
        streamed = self.first_token_s is not None and len(self.token_times_s) >= 2
        if not streamed or self.output_tokens < 2:
            return None
        assert self.first_token_s is not None  # for the type checker: `streamed` says so
        return (self.done_s - self.first_token_s) / (self.output_tokens - 1)
