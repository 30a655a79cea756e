"""Webhooks: POST each finished job to its `callback_url`, signed, retried, and only where allowed.

The request a receiver gets:

    POST <callback_url>
    Content-Type: application/json
    Inferlab-Job-Id: job-3f2a...
    Inferlab-Signature: t=1764000000,v1=5257a869e7ec...
    {"id": "job-3f2a...", "object": "job", "status": "succeeded", "result": {...}, ...}

`v1` is the hex HMAC-SHA256, keyed with the shared secret, of `"<t>." + body`: the timestamp is
signed with the body so that a captured request cannot be replayed later. A receiver recomputes
it over the raw bytes it received (before parsing them), compares in constant time, and rejects
old timestamps: `verify_signature` does all three. Any 2xx is delivered; anything else is tried
again with backoff, up to `max_attempts`, and the outcome is shown on the job. Delivery is at
least once: a receiver should treat a job id it has seen as a duplicate.

Where a callback may go: by default only to this machine (loopback), so that a job API open to
others cannot be used to make requests inside your network (server-side request forgery). Name
other hosts in `allow_hosts`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from urllib.parse import urlsplit

import httpx

from ._board import JobBoard
from ._records import Job, delivery_outcome, postpone_delivery, take_delivery
from .retry import Backoff
from .store import JobStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Inferlab-Signature"
JOB_ID_HEADER = "Inferlab-Job-Id"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """True if `header` signs `body` with `secret`, and is no older than `tolerance_s`."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        expected = sign(secret, body, timestamp)
    except (KeyError, ValueError):
        return False
    fresh = abs((time.time() if now is None else now) - timestamp) <= tolerance_s
    return fresh and hmac.compare_digest(expected, f"t={timestamp},v1={fields.get('v1', '')}")


def check_callback_url(url: str, allow_hosts: Iterable[str] = ()) -> str | None:
    """Why `url` may not receive webhooks, or None if it may."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "callback_url must be an http:// or https:// URL with a host"
    host = parts.hostname.lower()
    if host in {h.lower() for h in allow_hosts} or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"callback_url host {host!r} is not allowed: webhooks go to loopback addresses, "
        "or to hosts the server was started with (--allow-callback-host)"
    )


class WebhookSender:
    """Delivers due callbacks, as a task: `await sender.run()` until `stop()` and a cancel.

    Deliveries run concurrently, up to `max_in_flight`, and at most `per_host` at once to any
    one receiver (host and port): a receiver that never answers holds its own slots for a
    timeout each, never anybody else's. A due callback whose host is full waits in the store,
    where it is; only when a whole read of due callbacks is for full hosts are they postponed
    by one timeout (no attempt spent), so that callbacks behind them come into view.
    """

    def __init__(
        self,
        store: JobStore,
        board: JobBoard,
        secret: str,
        *,
        max_attempts: int = 5,
        timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        per_host: int = 4,
        max_in_flight: int = 64,
    ):
        if not 1 <= per_host <= max_in_flight:
            raise ValueError(
                f"need 1 <= per_host <= max_in_flight, got {per_host}, {max_in_flight}"
            )
        self.store, self.board, self.secret = store, board, secret
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self.clock = clock
        self.per_host, self.max_in_flight = per_host, max_in_flight
        self.delivered = 0
        self.failed = 0
        self._deliveries: set[asyncio.Task[None]] = set()
        self._busy_hosts: Counter[str] = Counter()  # host:port -> deliveries under way
        self._stopping = False

    def stop(self) -> None:
        """End run() at its next turn; cancel its task too, to end a wait under way. (The flag
        holds where a cancel is lost: see WorkerPool.aclose.)"""
        self._stopping = True

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.max_in_flight)
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as http:
            try:
                while not self._stopping:
                    mark = self.board.mark()
                    try:
                        wait = await self._start_due(http)
                    except Exception:
                        log.exception("webhook sender failed; it carries on")
                        wait = self.board.fallback_s
                    if wait is not None:
                        await self.board.wait(mark, wait)
            finally:
                for task in self._deliveries:
                    task.cancel()
                await asyncio.gather(*self._deliveries, return_exceptions=True)

    async def _start_due(self, http: httpx.AsyncClient) -> float | None:
        """Start what is due and has room; how long to wait before looking again (None: now)."""
        now = self.clock()
        limit = 4 * self.max_in_flight
        due = await self.store.due_callbacks(now, limit=limit)
        started, waiting = 0, []
        for job in due:
            # (re-checked: a store's index may be a moment behind the job, see workers.py)
            if job.callback_at is None or job.callback_at > now or job.callback_url is None:
                continue
            host = urlsplit(job.callback_url).netloc
            if (
                len(self._deliveries) >= self.max_in_flight
                or self._busy_hosts[host] >= self.per_host
            ):
                waiting.append(job)
                continue
            # Take the delivery first (compare-and-set), holding it for one timeout, so a
            # second sender (another process) does not post the same callback at the same time.
            taken = take_delivery(job, hold_until=now + self.timeout_s + 1)
            if not await self.store.replace(taken):
                continue
            self._busy_hosts[host] += 1
            task = asyncio.ensure_future(self._deliver(http, taken))
            self._deliveries.add(task)
            task.add_done_callback(partial(self._delivery_ended, host))
            started += 1
        if started:
            return None  # look again at once: more may be due
        if waiting:
            if len(due) == limit:  # every callback in view waits for a busy host: move them
                later = now + self.timeout_s
                await asyncio.gather(
                    *(self.store.replace(postpone_delivery(j, until=later)) for j in waiting)
                )
            return self.board.fallback_s  # (a delivery that ends nudges us sooner)
        next_at = await self.store.next_due_at()
        return self.board.fallback_s if next_at is None else next_at - self.clock()

    def _delivery_ended(self, host: str, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the store went away, say
            log.error("a webhook delivery failed; it is tried again", exc_info=task.exception())
        self._busy_hosts[host] -= 1
        if not self._busy_hosts[host]:
            del self._busy_hosts[host]
        self.board.nudge()  # a slot is free: callbacks waiting for it may go now

    async def _deliver(self, http: httpx.AsyncClient, taken: Job) -> None:
        assert taken.callback_url is not None
        body = json.dumps(taken.public(), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            JOB_ID_HEADER: taken.id,
            SIGNATURE_HEADER: sign(self.secret, body, int(self.clock())),
        }
        try:
            response = await http.post(taken.callback_url, content=body, headers=headers)
            error = None if response.is_success else f"the receiver answered {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"the receiver could not be reached ({exc!r})"
        attempt = taken.callback.attempts
        done = delivery_outcome(
            taken,
            error=error,
            give_up=attempt >= self.max_attempts,
            retry_at=self.clock() + self.backoff.delay_s(attempt),
        )
        if error is None:
            self.delivered += 1
        elif done.callback.state == "failed":
            self.failed += 1
        if await self.store.replace(done):
            self.board.post(done)
