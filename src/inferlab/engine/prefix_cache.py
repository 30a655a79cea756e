"""Prefix caching: reuse the KV blocks of a prompt's beginning that another request computed.

Only *full* blocks are cached, each keyed by a hash of its own tokens and of every token before
it (the hash chains through the parent block's hash), so two prompts share block i only if
they agree on all tokens up to the end of block i. A shared system prompt is the case in point:
its blocks are computed once and every later request skips their prefill.

Follows vLLM v1's `vllm/v1/core/kv_cache_utils.py` (`hash_block_tokens`: parent hash, the
block's token ids) and `KVCacheManager.get_computed_blocks` in
`vllm/v1/core/kv_cache_manager.py`: walk the chain until the first miss, and never hit the
prompt's last token, whose logits the model must compute to sample the next token.
Hits and queries count tokens, as vLLM's `prefix_cache_queries` / `prefix_cache_hits` do.
Left out: multimodal and LoRA extra keys, cache salts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .kv_blocks import BlockPool

# vLLM seeds the chain with a fixed "none hash" so the first block has a parent too.
_ROOT_HASH = 0


def extend_block_hashes(hashes: list[int], token_ids: Sequence[int], block_size: int) -> None:
    """Append to `hashes` the chain hash of every full block of `token_ids` not hashed yet.

    Incremental, because a sequence fills a block every `block_size` steps and re-hashing its
    whole history each time would cost O(length) a step. Python's hash() of a tuple of ints is
    the same in every process (only str hashing is salted), so equal token ids give equal
    hashes without a cryptographic hash (vLLM offers both: `builtin` and `sha256`).

    >>> a, b = [], []
    >>> extend_block_hashes(a, [1, 2, 3, 4, 5], 2); extend_block_hashes(b, [1, 2, 9, 4], 2)
    >>> len(a), a[0] == b[0], a[1] == b[1]
    (2, True, False)
    """
    parent = hashes[-1] if hashes else _ROOT_HASH
    for start in range(len(hashes) * block_size, len(token_ids) - block_size + 1, block_size):
        parent = hash((parent, tuple(token_ids[start : start + block_size])))
        hashes.append(parent)


@dataclass
class PrefixCacheStats:
    """What `/metrics` reports: tokens looked up, tokens found, resets."""

    queries: int = 0
    hits: int = 0
    resets: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


def longest_hit(
    pool: BlockPool, hashes: Sequence[int], num_tokens: int, block_size: int
) -> list[int]:
    """The cached blocks holding the longest full-block prefix of a `num_tokens`-token sequence
    whose block hashes are `hashes`. The caller `touch()`es them and counts the stats.

    At most num_tokens - 1 tokens can hit: the last one is always computed, for its logits.
    """
    usable_blocks = max(0, num_tokens - 1) // block_size
    blocks = []
    for block_hash in hashes[:usable_blocks]:
        block = pool.cached.get(block_hash)
        if block is None:
            break  # the chain is broken: nothing after a miss can be a shared prefix
        blocks.append(block)
    return blocks
