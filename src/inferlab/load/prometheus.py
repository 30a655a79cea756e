"""Read a server's Prometheus /metrics into plain numbers, for notebooks and benchmarks.

    counts = await scrape_metrics("http://127.0.0.1:8000/v1")
    counts["vllm:prefix_cache_hits_total"]        -> 4096.0

Each sample's value is summed over its labels (every engine, every model, every finish
reason), which is what a course question needs; a dashboard keeps the labels apart.
Works against vLLM too: the names are vLLM's.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name: value summed over labels}; buckets are kept apart
    by their `le` label: "name_bucket{le=0.5}"."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if "le" in sample.labels:
                name = f"{name}{{le={sample.labels['le']}}}"
            totals[name] = totals.get(name, 0.0) + sample.value
    return totals


async def scrape_metrics(base_url: str, *, timeout_s: float = 10.0) -> dict[str, float]:
    """GET /metrics beside an OpenAI base URL (…/v1) and parse it."""
    root = base_url.removesuffix("/").removesuffix("/v1")
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.get(f"{root}/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)
