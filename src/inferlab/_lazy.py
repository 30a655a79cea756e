"""Lazy exports: a package's public names, imported on first use (PEP 562).

`import inferlab` must be cheap: a notebook's first cell, every CLI call and every test pays
for it. So the packages whose names pull in FastAPI, uvicorn or matplotlib list them here and
import their modules only when a name is first looked up:

    __getattr__, __dir__ = lazy_exports(__name__, {"create_app": ".serve", ...})

A static checker still sees every name, because the package also imports them under
`if TYPE_CHECKING:`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, where: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for `package`; `where` maps each name to the module, relative to
    the package, that defines it ("." for a submodule of that name). A name is imported once,
    then cached in the package."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if where[name] == ".":  # the name is a submodule of the package itself
            value: Any = importlib.import_module(f".{name}", package)
        else:
            value = getattr(importlib.import_module(where[name], package), name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # the next look-up is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(where) | set(importlib.import_module(package).__dict__))

    return __getattr__, __dir__
