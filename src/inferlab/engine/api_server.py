"""The API server's own cost: the work of a real server's front end that is not a GPU step.

Between a request's first byte and the engine's queue, vLLM's API server parses the HTTP body,
validates it as an OpenAI request, tokenizes the prompt and hands the request to the engine
core (another process in V1). After each step it detokenizes the new tokens, builds each
stream's JSON chunk and writes it out. None of that is on the GPU, so the H100 profiles, timed
on the GPU alone, leave it out; a client's TTFT includes it, and so does vLLM's
`time_to_first_token_seconds`. The figures, and where they come from:

- `request_ms` = 10 ms a request. vLLM PR #21139 (V1, 2025) logged the front end's
  preprocessing of each request, arrival to engine hand-off, at 12-15 ms with 96 requests in
  flight. Its prompts' lengths are not given; 10 ms fixed plus the prompt's tokenizing below
  makes 11.7 ms at ShareGPT's mean prompt (230 tokens), the low end of that range.
- `token_ms` = 7.5 µs a token, to tokenize a prompt token and to detokenize an output token.
  vLLM PR #818 (2023, A100, Llama 70B, 500 requests of 512 + 128 tokens): a no-op tokenizer
  saved 2.4 s of the 3.8 s of CPU work in the step loop, 2.4 s / 320,000 tokens = 7.5 µs.

Requests reach the engine in the order they arrived, each after its own work (`queued_s`).
Output processing runs in the API-server process while the engine computes the next step (V1's
process split), so it delays when a step's tokens reach the clients, by `token_ms` per token
the step sampled, but never the GPU: throughput is unchanged. Left out on purpose: the
network, the chat template, and a front end that falls behind (vLLM's `--api-server-count`).
Scale it with `api_server_cost` (0: the pure engine, as lessons on the scheduler want it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiServerCost:
    """What the front end costs, in milliseconds (see the module docstring for the sources).

    >>> cost = ApiServerCost()
    >>> round(cost.before_engine_s(230) * 1000, 2)   # ShareGPT's mean prompt
    11.72
    >>> round(cost.delivery_s(256) * 1000, 2)       # a step that sampled 256 tokens
    1.92
    """

    request_ms: float = 10.0  # HTTP, JSON, the OpenAI request, the hand-off to the engine core
    token_ms: float = 0.0075  # tokenizing one prompt token, or detokenizing one output token

    def before_engine_s(self, prompt_tokens: int) -> float:
        """Seconds of front-end work from a request's arrival to the engine's queue."""
        return (self.request_ms + self.token_ms * prompt_tokens) / 1000.0

    def queued_s(self, arrival_s: float, prompt_tokens: int, previous_s: float) -> float:
        """When a request reaches the engine's queue: after its own front-end work, and not
        before the request that arrived before it (`previous_s`).

        subtle: in order. One event loop takes requests in turn, so a short prompt does not
        overtake a long one; were each on its own, a burst of a thousand would reach the
        engine sorted by prompt length, shortest first, and its median TTFT would fall by 3x.
        """
        return max(arrival_s + self.before_engine_s(prompt_tokens), previous_s)

    def delivery_s(self, tokens_sampled: int) -> float:
        """Seconds from a step's end until its last token has left for its client."""
        return self.token_ms * tokens_sampled / 1000.0

    def scaled(self, factor: float) -> ApiServerCost:
        """This cost times `factor`: 0 turns it off, 2 is a front end twice as slow."""
        if not (isinstance(factor, int | float) and factor >= 0):
            raise ValueError(f"api_server_cost must be >= 0, got {factor!r}")
        return ApiServerCost(self.request_ms * factor, self.token_ms * factor)
