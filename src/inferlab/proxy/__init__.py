"""proxy: the batching proxy service, an OpenAI-compatible front that batches many callers
into one upstream request and answers each of them exactly once.

May import: `engine`, `serve` (the shared HTTP scaffold and schemas), `wire`, `batching`.
"""

from .app import BatchingProxy, create_proxy_app

__all__ = ["BatchingProxy", "create_proxy_app"]
