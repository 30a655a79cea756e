"""`python -m inferlab ...` is the `inferlab` command."""

import sys

from .cli.main import main

sys.exit(main())
