"""Tokens and deterministic text for the simulated model.

Token approximation, used everywhere (prompt counts, `max_tokens`, `usage`, context limits): a
token is a run of letters or digits, or a single punctuation mark. Real BPE tokenizers give about
4 characters a token in English; this rule gives about 5, close enough to reason with, and it is
exact for the text the simulated model writes, because it writes one such token per step.

    count_tokens("Hello, world!") -> 4        ["Hello", ",", "world", "!"]

Generated text is a seeded walk through a small vocabulary, shaped into sentences so that it
reads like words. The same prompt, seed and temperature always give the same text; at
temperature 0 the seed is ignored, as greedy decoding would.
"""

from __future__ import annotations

import hashlib
import random
import re
import zlib
from collections.abc import Iterator

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Number of tokens in `text` under the course's approximation: "Hi there." -> 3."""
    return len(_TOKEN.findall(text))


# The simulated tokenizer has no fixed vocabulary: a token's id is a checksum of its text, so
# the same word always gets the same id (what prefix caching needs: equal prompts, equal ids)
# and `detokenize` can answer for every token this process has seen.
_SEEN: dict[int, str] = {}


def token_ids(text: str) -> list[int]:
    """Deterministic ids of `text`'s tokens, one per `count_tokens` token.

    >>> token_ids("Hi there.") == token_ids("Hi there.") and len(token_ids("Hi there.")) == 3
    True
    """
    ids = []
    for piece in _TOKEN.findall(text):
        token_id = zlib.crc32(piece.encode()) & 0x7FFFFFFF  # 31 bits: fits any JSON reader
        _SEEN.setdefault(token_id, piece)
        ids.append(token_id)
    return ids


def detokenize(ids: list[int]) -> str:
    """The text of ids that `token_ids` produced in this process; unknown ids raise ValueError.

    Words get a space before them, punctuation does not: detokenize(token_ids("Hi, you.")) ->
    "Hi, you."
    """
    unknown = [token_id for token_id in ids if token_id not in _SEEN]
    if unknown:
        raise ValueError(f"unknown token ids {unknown[:5]}: only ids this server made are known")
    pieces = [_SEEN[token_id] for token_id in ids]
    text = "".join(p if not p[0].isalnum() and p[0] != "_" else " " + p for p in pieces)
    return text.lstrip()


_SUBJECTS = (
    "the model|the server|the batch|the queue|every request|the scheduler|a token|the GPU|"
    "the cache|each worker|the client|our proxy|the kernel|the stream|a user|the engine"
).split("|")
_VERBS = (
    "reads waits for sends returns streams batches measures schedules holds serves fills "
    "drops retries decodes computes predicts answers shapes balances tracks"
).split(" ")
_OBJECTS = (
    "weights latency memory tokens prompts results requests throughput work time data "
    "attention answers jobs sequences steps layers logits budgets deadlines"
).split(" ")
_LINKS = "and while because so when until after before as".split(" ")
_ADJECTIVES = "fast slow small large new busy idle steady warm cold full empty".split(" ")


def _sentence(rng: random.Random) -> list[str]:
    """One sentence as tokens: words with a leading space, punctuation without."""
    words: list[str] = []
    for clause in range(rng.choice((1, 1, 2))):
        if clause:
            words += [",", rng.choice(_LINKS)]
        words += rng.choice(_SUBJECTS).split()
        words.append(rng.choice(_VERBS))
        if rng.random() < 0.4:
            words.append(rng.choice(_ADJECTIVES))
        words.append(rng.choice(_OBJECTS))
    words[0] = words[0][0].upper() + words[0][1:]
    tokens = [w if w == "," else " " + w for w in words]
    return [*tokens, "."]


def _rng_for(prompt: str, seed: int | None, temperature: float) -> random.Random:
    # subtle: Python's hash() of a str changes per process, so hash with sha256 instead.
    effective_seed = 0 if temperature == 0 or seed is None else seed
    key = f"{prompt}\x00{effective_seed}\x00{round(temperature, 3)}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def generate_tokens(
    prompt: str, *, seed: int | None = None, temperature: float = 1.0
) -> Iterator[str | None]:
    """Yield the model's tokens for a prompt; `None` is the end-of-sequence token.

    The text ends (yields None) at a sentence end after a prompt-dependent length between 20
    and 160 tokens, as a real model eventually stops; callers may ignore that end and keep
    reading. Every yielded string is exactly one token under `count_tokens`.
    """
    rng = _rng_for(prompt, seed, temperature)
    natural_length = rng.randint(20, 160)
    produced = 0
    while True:
        for token in _sentence(rng):
            produced += 1
            yield token
        if produced >= natural_length:
            yield None
