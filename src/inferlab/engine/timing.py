"""The engine's own account of one request: when it queued, was prefilled, and finished.

Measured on the engine's clock, in simulated seconds, so it is the request's time on the H100
the engine simulates, whatever the laptop running the client was doing meanwhile. The server
sends it with every response (`engine_timing` in the body, or in a stream's last chunk; TGI's
`x-queue-time` headers are the anchor), and the client's `Timing` carries it beside what the
client itself saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EngineTiming:
    """The engine's own account of one request, in simulated seconds from its arrival.

    >>> e = EngineTiming(queue_s=0.01, prefill_s=0.02, ttft_s=0.03, e2e_latency_s=0.12,
    ...                  output_tokens=10)
    >>> round(e.decode_s, 3), round(e.tpot_s, 3)
    (0.09, 0.01)
    """

    queue_s: float  # in the engine's queue -> the step that first took it
    prefill_s: float  # that step -> its first token
    ttft_s: float  # arrival -> first token: api_server_s + queue_s + prefill_s
    e2e_latency_s: float  # arrival -> last token
    output_tokens: int
    time_scale: float = 1.0  # the engine's wall seconds per simulated second
    api_server_s: float = 0.0  # arrival -> the engine's queue: HTTP, tokenizing (api_server.py)

    WIRE_NAME = "engine_timing"  # the field of a response body (or last chunk) that carries it

    @property
    def decode_s(self) -> float:
        return self.e2e_latency_s - self.ttft_s

    @property
    def tpot_s(self) -> float | None:
        return self.decode_s / (self.output_tokens - 1) if self.output_tokens >= 2 else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: object) -> EngineTiming | None:
        """The record in a response body's `engine_timing`, or None if it has none (any server
        but this course's) or it is malformed."""
        if not isinstance(body, dict):
            return None
        try:
            return cls(
                queue_s=float(body["queue_s"]),
                prefill_s=float(body["prefill_s"]),
                ttft_s=float(body["ttft_s"]),
                e2e_latency_s=float(body["e2e_latency_s"]),
                output_tokens=int(body["output_tokens"]),
                time_scale=float(body.get("time_scale", 1.0)),
                api_server_s=float(body.get("api_server_s", 0.0)),
            )
        except (KeyError, TypeError, ValueError):
            return None
