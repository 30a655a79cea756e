#!/usr/bin/env python3
"""A request-queuing proxy as it is often first written. It has three flaws: find them.

    python naive_proxy.py            # sends three requests through it, with a 3 s timeout

It queues requests and, every FLUSH_INTERVAL seconds, sends what is queued to the model server
as one request. It looks reasonable. Run it and watch what happens.
"""

import asyncio
import time

import httpx

BATCH_SIZE = 8
FLUSH_INTERVAL = 0.05  # seconds


class NaiveProxy:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.queue: list[dict] = []
        self.wakeups = 0  # how often the flush loop woke up

    async def submit(self, prompt: str) -> str:
        """Queue a prompt and return its completion."""
        done = asyncio.Event()
        entry = {"prompt": prompt, "on_result": lambda text: None, "done": done}
        self.queue.append(entry)
        await done.wait()
        return entry["result"]

    async def flush_forever(self) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL)
                self.wakeups += 1
                if not self.queue:
                    continue
                batch, self.queue = self.queue[:BATCH_SIZE], self.queue[BATCH_SIZE:]
                joined = "\n".join(entry["prompt"] for entry in batch)
                response = await http.post(
                    f"{self.base_url}/completions", json={"prompt": joined, "max_tokens": 16}
                )
                text = response.json()["choices"][0]["text"]
                for entry in batch:
                    entry["on_result"](text)


async def main(base_url: str, timeout_s: float = 3.0) -> None:
    proxy = NaiveProxy(base_url)
    flusher = asyncio.ensure_future(proxy.flush_forever())
    started = time.perf_counter()
    try:
        answers = await asyncio.wait_for(
            asyncio.gather(*(proxy.submit(f"Question {i}") for i in range(3))), timeout_s
        )
        print("answers:", answers)
    except asyncio.TimeoutError:
        print(f"no answer after {time.perf_counter() - started:.1f} s: the callers hang")
    finally:
        flusher.cancel()
        print(f"the flush loop woke up {proxy.wakeups} times")


if __name__ == "__main__":
    import inferlab

    asyncio.run(main(inferlab.base_url()))
