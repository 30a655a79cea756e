"""A request-queuing proxy that batches, done right: your lab's module.

    proxy = QueueProxy(base_url, batch_size=8, flush_interval_s=0.05)
    text = await proxy.complete("Hello")        # many callers at once share one request

Three rules fix the naive proxy:
1. one future per request: every caller waits on its own answer, and always gets one;
2. a list of prompts, not one joined string: one choice per prompt comes back, in any order,
   and its `index` says whose it is (a wrong count fails the whole batch);
3. send a batch when it is full or its oldest request has waited `flush_interval_s` (each
   request remembers when it arrived), and sleep on an event, not a clock, when idle.
A caller that gives up (its task is cancelled) leaves the queue, and its batch goes on without it.
"""

from __future__ import annotations

import asyncio

import httpx


class QueueProxy:
    def __init__(
        self,
        base_url: str,
        *,
        batch_size: int = 8,
        flush_interval_s: float = 0.05,
        max_tokens: int = 16,
        http: httpx.AsyncClient | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_tokens = max_tokens
        self.http = http or httpx.AsyncClient(timeout=60)
        self.queue: list[tuple[str, asyncio.Future[str], float]] = []  # prompt, future, arrival
        self.batches_sent: list[int] = []  # the size of each batch, to look at afterwards
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    async def complete(self, prompt: str) -> str:
        """Queue one prompt and wait for its own completion text."""
        # BEGIN SOLUTION (a future per request, queued with its arrival; one that gives up leaves)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        entry = (prompt, future, loop.time())
        self.queue.append(entry)
        self._ensure_flusher()
        assert self._wake is not None
        self._wake.set()
        try:
            return await future
        except asyncio.CancelledError:  # the caller gave up: free its place in the queue
            if entry in self.queue:
                self.queue.remove(entry)
            raise
        # END SOLUTION

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._wake = asyncio.Event()
            self._flusher = asyncio.ensure_future(self._flush_forever())

    async def _flush_forever(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            # BEGIN SOLUTION (sleep until a request comes; send when full or its oldest is due)
            if not self.queue:
                await self._wake.wait()  # idle: sleep until a request arrives, no polling
                self._wake.clear()
                continue
            oldest_arrival = self.queue[0][2]
            time_left = oldest_arrival + self.flush_interval_s - loop.time()
            if len(self.queue) < self.batch_size and time_left > 0:
                try:  # wait for a full batch, but not past the oldest request's deadline
                    await asyncio.wait_for(self._full_batch(), time_left)
                except asyncio.TimeoutError:
                    pass
            batch, self.queue = self.queue[: self.batch_size], self.queue[self.batch_size :]
            await self._send(batch)
            # END SOLUTION

    async def _full_batch(self) -> None:
        assert self._wake is not None
        while len(self.queue) < self.batch_size:
            await self._wake.wait()
            self._wake.clear()

    async def _send(self, batch: list[tuple[str, asyncio.Future[str], float]]) -> None:
        """One upstream request for the whole batch; each caller gets its own choice."""
        self.batches_sent.append(len(batch))
        # BEGIN SOLUTION (one request for the batch; each caller its own choice; any failure to all)
        try:
            response = await self.http.post(
                f"{self.base_url}/completions",
                json={"prompt": [prompt for prompt, _, _ in batch], "max_tokens": self.max_tokens},
            )
            response.raise_for_status()
            choices = response.json()["choices"]
            if len(choices) != len(batch):  # then no answer can be trusted to be whose it says
                raise RuntimeError(f"{len(batch)} prompts sent, {len(choices)} choices came back")
            texts = {c["index"]: c["text"] for c in choices}
            for index, (_, future, _) in enumerate(batch):
                if not future.done():
                    future.set_result(texts[index])
        except Exception as exc:  # whatever went wrong, every caller must hear about it
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
        # END SOLUTION

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.http.aclose()


# --- A checked answer, in your own words -------------------------------------------------------
SHORT_FLUSH_DOES = ("more upstream requests", "higher latency", "nothing")


def very_short_flush_interval() -> tuple[str, str]:
    """What does a very short flush interval do? Return (one of SHORT_FLUSH_DOES,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # BEGIN SOLUTION (choose from what you measured, and say why in your own words)
    return "more upstream requests", (
        "The proxy no longer waits for company, so batches shrink to one or two and the same "
        "answers cost about three times the upstream requests, each a forward pass; in exchange "
        "latency drops, since nobody waits for a batch to fill."
    )
    # END SOLUTION
