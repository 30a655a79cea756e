"""lab: what the notebooks use around the library: where the model server lives
(`runtime.base_url()`), the servers a notebook starts in processes of their own (`servers`),
the course's plots, the live dashboard, and the measurements lessons 02 and 03 make
(`collecting`: ways to collect a job's result; `streaming`: SSE against WebSocket, nginx in
front), imported by module: `from inferlab.lab import streaming`.

May import everything before it (`engine` … `load`). `plots` (matplotlib) and `widgets`
(ipywidgets) load when first used, so `import inferlab` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from . import plots, runtime, servers, widgets
    from .runtime import (
        api_key,
        base_url,
        embedded_model,
        embedded_server,
        external_base_url,
        model_clock,
        time_scale,
        time_scale_choice,
    )
    from .widgets import BatchingDashboard

_WHERE = {
    "plots": ".",
    "runtime": ".",
    "servers": ".",
    "widgets": ".",
    "api_key": ".runtime",
    "base_url": ".runtime",
    "embedded_model": ".runtime",
    "embedded_server": ".runtime",
    "external_base_url": ".runtime",
    "model_clock": ".runtime",
    "time_scale": ".runtime",
    "time_scale_choice": ".runtime",
    "BatchingDashboard": ".widgets",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

__all__ = [
    "BatchingDashboard",
    "api_key",
    "base_url",
    "embedded_model",
    "embedded_server",
    "external_base_url",
    "model_clock",
    "plots",
    "runtime",
    "servers",
    "time_scale",
    "time_scale_choice",
    "widgets",
]
