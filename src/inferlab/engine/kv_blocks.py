"""Paged KV cache: a pool of fixed-size blocks, handed out as tokens arrive.

A sequence's keys and values live in blocks of `block_size` tokens, anywhere in the pool; a
block table maps its positions to blocks (PagedAttention, Kwon et al. SOSP'23). Nothing is
reserved up front: a sequence takes a new block only when its last one is full, so the pool
holds as many sequences as their *current* lengths allow, and can run out mid-generation.
That is what preemption (in `scheduler.py`) is for.

Follows vLLM v1's `vllm/v1/core/block_pool.py` (`BlockPool.get_new_blocks`, `free_blocks`,
`reset_prefix_cache`) and the free list of `vllm/v1/core/kv_cache_utils.py`
(`FreeKVCacheBlockQueue`): free blocks form one queue in eviction order, and a freed block
that holds a cached prefix keeps its hash until it is handed out again (LRU eviction).
Block 0 is vLLM's null block (`BlockPool.null_block`, taken off the free queue at start and
never handed out; `get_usage` subtracts it): a pool of N blocks holds N - 1 blocks of tokens,
which a small pool feels (measured: 20 blocks preempt as vLLM does only with this, see
tests/test_real_decisions.py).
Left out: block ids' physical layout, KV offloading to CPU, sliding-window and hybrid groups.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


def blocks_for(tokens: int, block_size: int) -> int:
    """Blocks needed to hold `tokens` tokens: blocks_for(33, 16) -> 3."""
    return -(-tokens // block_size)


class BlockPool:
    """`num_blocks` KV blocks (vLLM's num_gpu_blocks, the null block included) with reference
    counts, a free queue and a hash → block map.

    >>> pool = BlockPool(5); ids = pool.allocate(3); pool.num_free, pool.usage
    (1, 0.75)
    """

    def __init__(self, num_blocks: int):
        if num_blocks < 2:
            raise ValueError(
                f"the KV pool needs at least two blocks (one is the null block), got {num_blocks}"
            )
        self.num_blocks = num_blocks
        self.num_usable = num_blocks - 1  # all but the null block
        self.ref_count = [0] * num_blocks
        self.block_hash: list[int | None] = [None] * num_blocks  # set while a block is cached
        self.cached: dict[int, int] = {}  # block hash -> block id, for prefix caching
        # Free blocks in eviction order: the head goes first. An OrderedDict gives vLLM's
        # doubly linked list (O(1) remove from the middle when a cached block is hit).
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(1, num_blocks))

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def usage(self) -> float:
        """Share of blocks held by some sequence: vLLM's `kv_cache_usage_perc` (1 = full).

        Free blocks that still hold a cached prefix count as free, as in vLLM.
        """
        return 1.0 - self.num_free / self.num_usable

    def allocate(self, count: int) -> list[int]:
        """Take `count` blocks from the head of the free queue; the caller checks `num_free`."""
        assert count <= self.num_free, "allocate() past the end of the pool"
        blocks = []
        for _ in range(count):
            block, _ = self._free.popitem(last=False)
            self._evict(block)  # its old cached contents are about to be overwritten
            self.ref_count[block] = 1
            blocks.append(block)
        return blocks

    def touch(self, blocks: Iterable[int]) -> None:
        """Share cached blocks with one more sequence (a prefix-cache hit)."""
        for block in blocks:
            if self.ref_count[block] == 0:
                del self._free[block]  # in use again: no longer a candidate for eviction
            self.ref_count[block] += 1

    def free(self, blocks: Iterable[int]) -> None:
        """Give blocks back. Pass them tail first, as vLLM's `free()` does, so that when they
        are evicted the end of a prompt goes before its beginning (which others may share)."""
        for block in blocks:
            self.ref_count[block] -= 1
            if self.ref_count[block] == 0:
                self._free[block] = None  # the tail of the queue: evicted last

    def cache(self, block: int, block_hash: int) -> None:
        """Remember that `block` holds the tokens whose chain hash is `block_hash`."""
        if block_hash not in self.cached:
            self.cached[block_hash] = block
            self.block_hash[block] = block_hash

    def _evict(self, block: int) -> None:
        block_hash = self.block_hash[block]
        if block_hash is not None:
            del self.cached[block_hash]
            self.block_hash[block] = None

    def reset_prefix_cache(self) -> bool:
        """Forget every cached block. Refused (False) while any block is in use, as vLLM's
        `BlockPool.reset_prefix_cache` refuses: a running sequence still points at them."""
        if self.num_free != self.num_usable:
            return False
        self.cached.clear()
        self.block_hash = [None] * self.num_blocks
        return True
