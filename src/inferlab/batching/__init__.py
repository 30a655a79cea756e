"""batching: `MicroBatcher`, the size-or-deadline queue in front of a batch handler.

`batcher` is the queue and its flusher; `guarantee` is how a batch's callers are answered, each
exactly once whatever the handler did, plus the settings and counters; `loops` applies a change
on the batcher's own event loop from any thread.

May import: `engine.clock` and `inferlab.errors`. It knows nothing of HTTP: the proxy and the
job workers hand it their own handler.
"""

from .batcher import MicroBatcher
from .guarantee import BatcherSettings, BatcherStats

__all__ = ["BatcherSettings", "BatcherStats", "MicroBatcher"]
