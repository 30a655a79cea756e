"""`python -m inferlab ...` is the `inferlab` command."""

import sys

from .cli import main

sys.exit(main())
