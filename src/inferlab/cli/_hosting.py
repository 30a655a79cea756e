"""What `inferlab serve`, `proxy` and `jobs` share: where to listen, how to log, how to stop.

Each command's own flags come from its settings class (`Settings.add_arguments`), so a flag and
the field it sets have the same name. `--settings-json` gives them all at once (flags win):
that is how a notebook starts a server in a process of its own (`serve.hosting.ServerProcess`).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..serve.hosting import exit_with_parent, uvicorn_options_for


def add_hosting_arguments(parser: argparse.ArgumentParser, *, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--settings-json", default="{}", help="all settings as one JSON object (flags win)"
    )
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)


def key_from_environment() -> dict[str, Any]:
    """The server's API key from VLLM_API_KEY, as vLLM reads it: on the command line, `ps`
    would show it to every user of the machine. A flag or --settings-json still wins."""
    key = os.environ.get("VLLM_API_KEY")
    return {"api_key": key} if key else {}


def settings_json(args: argparse.Namespace) -> dict[str, Any]:
    given = json.loads(args.settings_json)
    if not isinstance(given, dict):
        raise ValueError(f"--settings-json must be a JSON object, got {args.settings_json!r}")
    return given


def run(app: Any, args: argparse.Namespace) -> int:
    """Serve `app` until SIGTERM or Ctrl-C; open streams get a bounded grace period to finish
    (UVICORN_DEFAULTS), so a restart is never held up by a long-poll or an endless stream; the
    app's HTTP limits (header size, count and timeout, a connection cap) hold from the start."""
    import uvicorn

    if args.exit_with_parent:
        exit_with_parent()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        **uvicorn_options_for(app),
    )
    return 0
