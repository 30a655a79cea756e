"""The `inferlab` command.

inferlab serve --port 8000 --batching continuous --time-scale 1
inferlab doctor                                   # the embedded server, or INFERLAB_BASE_URL
inferlab doctor --base-url http://127.0.0.1:8080/v1   # your llama-server, vLLM or Ollama
inferlab jobs --upstream http://127.0.0.1:8000/v1 --db jobs.db --workers 4
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ._hosting import add_hosting_arguments, key_from_environment, run, settings_json


def _serve(args: argparse.Namespace) -> int:
    from ..serve import ModelServer, ServerSettings

    settings = ServerSettings.from_arguments(args, **key_from_environment(), **settings_json(args))
    server = ModelServer(settings)
    print(
        f"inferlab: serving {server.model.name} on http://{args.host}:{args.port}/v1",
        flush=True,
    )
    return run(server.app, args)


def _proxy(args: argparse.Namespace) -> int:
    from ..proxy import BatchingProxy
    from ..proxy.settings import ProxySettings

    settings = ProxySettings.from_arguments(args, **key_from_environment(), **settings_json(args))
    proxy = BatchingProxy(settings)
    where = f"http://{args.host}:{args.port}/v1"
    print(f"inferlab: batching proxy on {where} -> {settings.upstream}", flush=True)
    return run(proxy.app, args)


def _jobs(args: argparse.Namespace) -> int:
    from ..jobs import JobServer
    from ..jobs.settings import JobSettings

    defaults = {
        "webhook_secret": os.environ.get("INFERLAB_WEBHOOK_SECRET"),
        **key_from_environment(),
    }
    settings = JobSettings.from_arguments(args, **{**defaults, **settings_json(args)})
    server = JobServer(settings)
    where = settings.redis_url or settings.db
    print(
        f"inferlab: job API on http://{args.host}:{args.port}/v1/jobs -> {settings.upstream} "
        f"(jobs in {where})",
        flush=True,
    )
    return run(server.app, args)


def _bench(args: argparse.Namespace) -> int:
    from ..lab import runtime
    from . import bench as _bench

    base_url = args.base_url or runtime.external_base_url() or runtime.embedded_server().base_url
    return _bench.run(args, base_url, args.api_key or runtime.api_key())


def _doctor(args: argparse.Namespace) -> int:
    from ..lab import runtime
    from . import doctor as _doctor

    checks = _doctor.environment_checks()
    url = args.base_url or runtime.external_base_url()
    base_url = url or runtime.embedded_server().base_url
    api_key = args.api_key or runtime.api_key()
    checks += _doctor.server_checks(base_url, api_key)
    try:
        checks += _doctor.profile_checks(_doctor.server_profile(base_url, api_key))
    except Exception as exc:  # an unreachable server already failed its checks above
        checks.append(("server profile", False, f"{type(exc).__name__}: {exc}"[:90]))
    # The URL once: "the embedded server" only says where it came from.
    print(
        f"inferlab doctor: checking {base_url}" + ("" if url else " (the embedded server)") + "\n"
    )
    print(_doctor.format_table(checks))
    failed = sum(not ok for _, ok, _ in checks)
    print(f"\n{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    from ..jobs.settings import JobSettings
    from ..proxy.settings import ProxySettings
    from ..serve.settings import ServerSettings

    serve = commands.add_parser("serve", help="run the OpenAI-compatible simulated model server")
    add_hosting_arguments(serve, port=8000)
    ServerSettings.add_arguments(serve)
    serve.set_defaults(run=_serve)

    proxy = commands.add_parser("proxy", help="run the batching proxy in front of a server")
    add_hosting_arguments(proxy, port=9000)
    ProxySettings.add_arguments(proxy)
    proxy.set_defaults(run=_proxy)

    jobs = commands.add_parser("jobs", help="run the job API (queue, workers, webhooks)")
    add_hosting_arguments(jobs, port=9100)
    JobSettings.add_arguments(jobs)
    jobs.set_defaults(run=_jobs)

    bench = commands.add_parser("bench", help="load a server and print serving metrics")
    from .bench import add_arguments

    add_arguments(bench)
    bench.set_defaults(run=_bench)

    doctor = commands.add_parser("doctor", help="check this environment and a server")
    doctor.add_argument(
        "--base-url",
        default=None,
        help="server to check (default: INFERLAB_BASE_URL, else embedded)",
    )
    doctor.add_argument("--api-key", default=None)
    doctor.set_defaults(run=_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, TypeError) as exc:  # bad settings, said plainly, not as a traceback
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
