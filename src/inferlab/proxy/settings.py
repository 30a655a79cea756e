"""The batching proxy's settings: its upstream, its micro-batcher's knobs, its deadline.

    inferlab proxy --upstream http://127.0.0.1:8080/v1 --max-batch-size 16
    BatchingProxy(ProxySettings(upstream="http://127.0.0.1:8080/v1", max_batch_size=16))

The batching knobs can change while it runs (`PUT /admin/batching`, `BatchingProxy.configure`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..serve._settings import HttpLimits, required, setting
from ..serve.settings import DEFAULT_MAX_BODY_BYTES

# What may change while the proxy runs: the batcher's knobs and the caller's deadline.
LIVE_KNOBS = (
    "max_batch_size",
    "batch_wait_timeout_s",
    "max_concurrent_batches",
    "max_queue_size",
    "dispatch_when_idle",
    "request_timeout_s",
)


@dataclass(frozen=True, kw_only=True)
class ProxySettings(HttpLimits):
    upstream: str = required("the model server's base URL, ending in /v1")
    upstream_api_key: str | None = setting(None, "the key the upstream wants, if any")
    list_prompts: bool = setting(
        True, "the upstream takes a list of prompts in one request (else: fan out)"
    )
    max_batch_size: int = setting(8, "callers in one upstream request at most")
    batch_wait_timeout_s: float = setting(0.01, "longest wait for a batch to fill")
    max_concurrent_batches: int = setting(1, "upstream requests under way at once")
    dispatch_when_idle: bool = setting(
        True, "send at once whenever no batch is in flight, full or not"
    )
    max_queue_size: int | None = setting(
        None,
        "callers waiting at most, then 429 (default: measured as it runs, what the upstream "
        "finishes in half the request timeout: completed req/s x timeout x 0.5, between 4 "
        "batches and 10000; 256 until measured under load)",
    )
    request_timeout_s: float = setting(300.0, "a caller's deadline: 504 past it")
    max_body_bytes: int = setting(DEFAULT_MAX_BODY_BYTES, "largest request body accepted")
    api_key: str | None = setting(
        None, "require 'Authorization: Bearer KEY' (default: the VLLM_API_KEY variable)"
    )

    def check(self) -> None:
        super().check()  # the HTTP limits
        if not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"upstream must be an http(s) URL, got {self.upstream!r}")
        if not self.request_timeout_s > 0:
            raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")

    @property
    def batching(self) -> dict[str, Any]:
        """The MicroBatcher's own settings, checked there (BatcherSettings)."""
        batching: dict[str, Any] = {
            "max_batch_size": self.max_batch_size,
            "batch_wait_timeout_s": self.batch_wait_timeout_s,
            "max_concurrent_batches": self.max_concurrent_batches,
            "dispatch_when_idle": self.dispatch_when_idle,
        }
        if self.max_queue_size is not None:
            batching["max_queue_size"] = self.max_queue_size
        return batching
