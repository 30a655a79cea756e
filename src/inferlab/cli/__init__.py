"""cli: `inferlab serve | proxy | jobs | bench | doctor`, each a thin shell over the library.

May import everything; nothing imports it.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
