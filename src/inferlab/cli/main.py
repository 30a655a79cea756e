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

from ..engine.profiles import DEFAULT_PROFILE, PROFILES
from ..engine.scheduler import Batching
from ..serve.hosting import UVICORN_DEFAULTS


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..serve.app import create_app

    app = create_app(
        profile=args.profile,
        batching=args.batching,
        max_num_seqs=args.max_num_seqs,
        kv_capacity_tokens=args.kv_capacity_tokens,
        time_scale=args.time_scale,
        api_key=args.api_key,
        max_concurrent_requests=args.max_concurrent_requests,
    )
    print(f"inferlab: serving {args.profile} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **UVICORN_DEFAULTS)
    return 0


def _proxy(args: argparse.Namespace) -> int:
    import uvicorn

    from ..proxy.app import create_proxy_app

    app = create_proxy_app(
        args.upstream,
        upstream_api_key=args.upstream_api_key,
        list_prompts=not args.no_list_prompts,
        api_key=args.api_key,
        request_timeout_s=args.request_timeout_s,
        max_batch_size=args.max_batch_size,
        batch_wait_timeout_s=args.batch_wait_timeout_s,
        max_concurrent_batches=args.max_concurrent_batches,
        max_queue_size=args.max_queue_size,
    )
    print(
        f"inferlab: batching proxy on http://{args.host}:{args.port}/v1 -> {args.upstream}",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **UVICORN_DEFAULTS)
    return 0


def _jobs(args: argparse.Namespace) -> int:
    import uvicorn

    from ..jobs import RedisJobStore, SQLiteJobStore, create_jobs_app

    store = RedisJobStore(args.redis_url) if args.redis_url else SQLiteJobStore(args.db)
    app = create_jobs_app(
        args.upstream,
        store=store,
        upstream_api_key=args.upstream_api_key,
        api_key=args.api_key,
        allow_callback_hosts=args.allow_callback_host,
        workers=args.workers,
        max_queue_size=args.max_queue_size,
        max_attempts=args.max_attempts,
        lease_s=args.lease_s,
        webhook_secret=args.webhook_secret or os.environ.get("INFERLAB_WEBHOOK_SECRET"),
        max_batch_size=args.max_batch_size,
        batch_wait_timeout_s=args.batch_wait_timeout_s,
    )
    where = args.redis_url or args.db
    print(
        f"inferlab: job API on http://{args.host}:{args.port}/v1/jobs -> {args.upstream} "
        f"(jobs in {where})",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,  # long-polls and event streams must not hold a restart
        **UVICORN_DEFAULTS,
    )
    return 0


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

    serve = commands.add_parser("serve", help="run the OpenAI-compatible simulated model server")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    serve.add_argument("--batching", default="continuous", choices=[b.value for b in Batching])
    serve.add_argument("--max-num-seqs", type=int, default=256)
    serve.add_argument(
        "--kv-capacity-tokens",
        type=int,
        default=None,
        help="KV-cache size in tokens (default: the profile's)",
    )
    serve.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="wall seconds per simulated second (0.1 = ten times faster)",
    )
    serve.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=None,
        help="serve at most this many HTTP requests at once (1: a naive server)",
    )
    serve.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    proxy = commands.add_parser("proxy", help="run the batching proxy in front of a server")
    proxy.add_argument("--upstream", required=True, help="the server's base URL, ending in /v1")
    proxy.add_argument("--host", default="127.0.0.1")
    proxy.add_argument("--port", type=int, default=9000)
    proxy.add_argument("--max-batch-size", type=int, default=8)
    proxy.add_argument("--batch-wait-timeout-s", type=float, default=0.01)
    proxy.add_argument("--max-concurrent-batches", type=int, default=1)
    proxy.add_argument("--max-queue-size", type=int, default=10_000)
    proxy.add_argument("--request-timeout-s", type=float, default=300.0)
    proxy.add_argument(
        "--no-list-prompts",
        action="store_true",
        help="the upstream takes one prompt per request: fan out instead",
    )
    proxy.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    proxy.add_argument("--upstream-api-key", default=None)
    proxy.add_argument("--log-level", default="info")
    proxy.set_defaults(run=_proxy)

    jobs = commands.add_parser("jobs", help="run the job API (queue, workers, webhooks)")
    jobs.add_argument("--upstream", required=True, help="the server's base URL, ending in /v1")
    jobs.add_argument("--host", default="127.0.0.1")
    jobs.add_argument("--port", type=int, default=9100)
    jobs.add_argument("--db", default="jobs.db", help="SQLite file for the jobs (default store)")
    jobs.add_argument("--redis-url", default=None, help="keep jobs in Redis instead")
    jobs.add_argument("--workers", type=int, default=4, help="jobs in flight at once")
    jobs.add_argument("--max-queue-size", type=int, default=10_000, help="429 beyond this")
    jobs.add_argument("--max-attempts", type=int, default=3)
    jobs.add_argument(
        "--lease-s", type=float, default=10.0, help="a dead worker's job is retried after this"
    )
    jobs.add_argument("--max-batch-size", type=int, default=8)
    jobs.add_argument("--batch-wait-timeout-s", type=float, default=0.01)
    jobs.add_argument(
        "--webhook-secret",
        default=None,
        help="HMAC key that signs webhooks (default: INFERLAB_WEBHOOK_SECRET; none: no webhooks)",
    )
    jobs.add_argument(
        "--allow-callback-host",
        action="append",
        default=[],
        help="a host webhooks may go to, besides loopback (repeatable)",
    )
    jobs.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    jobs.add_argument("--upstream-api-key", default=None)
    jobs.add_argument("--log-level", default="info")
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
    except ValueError as exc:  # bad option values, said plainly instead of a traceback
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
