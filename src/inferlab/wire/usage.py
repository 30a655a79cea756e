"""Each caller's own usage when its prompts shared one upstream request: the server's count.

    callers A: ["x"], B: ["y", "z"]  ->  upstream usage for the list: {prompt 9, completion 24}
    A gets x's tokens, B gets y's + z's, each as the server itself counted them.

Usage is billing, so it must be the server's count, never an estimate: per prompt from a stream's
chunks (vLLM's continuous_usage_stats, llama.cpp's final chunk of each prompt), from the tokens a
plain answer lists (vLLM's return_token_ids), or from the server's POST /tokenize. The course's
own `count_tokens` is used only where it is the server's rule (the embedded server), or for an
unknown server, which doctor flags.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from ..engine.text import count_tokens
from .server_profiles import ServerProfile, count_tokens_on

Json = dict[str, Any]

# Fields we add to a plain request for exact counts, and take out before a caller sees them.
TOKEN_ID_FIELDS = ("token_ids", "prompt_token_ids")


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def course_usage(prompts: list[str], texts: list[str]) -> dict[str, int]:
    """The course's token rule: exact for the embedded server only."""
    return usage(sum(map(count_tokens, prompts)), sum(map(count_tokens, texts)))


def from_choices(choices: list[Json], n: int) -> dict[str, int] | None:
    """Usage summed from what each choice says of itself, None if any choice is silent.

    Each choice's `usage` is its prompt's tokens and its own completion tokens; with n > 1 the
    n samples of one prompt share that prompt, so it is counted once (choice index % n == 0).
    """
    prompt_tokens = completion_tokens = 0
    for choice in choices:
        own = choice.get("usage")
        if not isinstance(own, dict):
            return None
        if int(choice.get("index") or 0) % n == 0:
            prompt_tokens += int(own.get("prompt_tokens") or 0)
        completion_tokens += int(own.get("completion_tokens") or 0)
    return usage(prompt_tokens, completion_tokens)


def from_token_ids(choices: list[Json], n: int) -> dict[str, int] | None:
    """Usage from vLLM's `return_token_ids`: the answer lists the very tokens it counted."""
    prompt_tokens = completion_tokens = 0
    for choice in choices:
        ids, prompt_ids = choice.get("token_ids"), choice.get("prompt_token_ids")
        if not isinstance(ids, list) or not isinstance(prompt_ids, list):
            return None
        if int(choice.get("index") or 0) % n == 0:
            prompt_tokens += len(prompt_ids)
        completion_tokens += len(ids)
    return usage(prompt_tokens, completion_tokens)


async def from_tokenizer(
    http: httpx.AsyncClient,
    base_url: str,
    profile: ServerProfile,
    prompts: list[str],
    choices: list[Json],
    max_tokens: int | None,
) -> dict[str, int]:
    """Usage from the server's POST /tokenize: prompts with their BOS, texts without.

    subtle: re-tokenizing a generated text can merge tokens the model emitted apart, so an answer
    cut at `max_tokens` (finish_reason "length") is counted as exactly max_tokens instead.
    """

    async def completion(choice: Json) -> int:
        if choice.get("finish_reason") == "length" and max_tokens:
            return max_tokens
        return await count_tokens_on(
            http, base_url, profile, choice.get("text") or "", special=False
        )

    prompt_counts = await asyncio.gather(
        *(count_tokens_on(http, base_url, profile, prompt, special=True) for prompt in prompts)
    )
    completion_counts = await asyncio.gather(*(completion(choice) for choice in choices))
    return usage(sum(prompt_counts), sum(completion_counts))
