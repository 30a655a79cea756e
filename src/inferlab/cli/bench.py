"""`inferlab bench`: load a server and print what it measured, like `vllm bench serve`.

    inferlab bench --num-prompts 200 --request-rate 20 --output-len exp:128:1024
    inferlab bench --mode proxy --max-concurrency 64            # through a batching proxy
    inferlab bench --base-url http://127.0.0.1:8080/v1 --mode stream --save-json run.json
    inferlab bench --mode jobs --request-rate 50           # through a job API (SQLite, 4 workers)
    inferlab bench --find-max-rate --slo-p99-e2e-ms 500 --request-rate 8   # the highest rate
                                                                      # whose p99 meets 500 ms

It calls exactly what the notebooks call (`loadgen.run_load`), so the figures agree. Every run
prints the rate offered against the rate the load generator really sent, the generator's own
lag, and a short history of each figure. `--find-max-rate` probes rates (warm-up first; the
requests still queued at the end count at their age; a rate "meets" only if it was really sent)
and prints every probe and why the search stopped (`load.slo_search`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import InferlabError
from ..load.clock import ModelClock
from ..load.history import history_table
from ..load.loadgen import LoadRun, run_load
from ..load.metrics import SLO, RequestResult
from ..load.probes import sent_rate
from ..load.slo_search import find_max_rate, probe_rate
from ..load.workloads import Lengths, Workload
from ..serve.hosting import ServerThread


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default=None,
        help="server to load (default: INFERLAB_BASE_URL, else embedded)",
    )
    parser.add_argument("--api-key", default=None)
    parser.add_argument(
        "--mode",
        default="async",
        choices=["sync", "async", "stream", "proxy", "jobs"],
        help="proxy: through a batching proxy started in front of the server; jobs: through "
        "a job API started in front of it (a temporary SQLite file)",
    )
    parser.add_argument("--num-prompts", type=int, default=100)
    parser.add_argument(
        "--request-rate",
        type=float,
        default=math.inf,
        help="open loop: requests per second (default: all at once)",
    )
    parser.add_argument("--burstiness", type=float, default=1.0, help="1 Poisson, <1 burstier")
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--users", type=int, default=None, help="closed loop: this many users")
    parser.add_argument("--think-time-s", type=float, default=0.0)
    parser.add_argument(
        "--input-len",
        type=Lengths.parse,
        default=Lengths.parse("64"),
        help="prompt tokens: 64, uniform:32:128, exp:128:1024",
    )
    parser.add_argument("--output-len", type=Lengths.parse, default=Lengths.parse("64"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slo-ttft-ms", type=float, default=None)
    parser.add_argument("--slo-e2e-ms", type=float, default=None)
    parser.add_argument("--time-limit-s", type=float, default=600.0)
    parser.add_argument("--save-json", default=None, metavar="PATH")
    parser.add_argument("--no-progress", action="store_true")
    search = parser.add_argument_group(
        "rate search", "the highest request rate whose p99 end-to-end latency meets a target"
    )
    search.add_argument(
        "--find-max-rate",
        action="store_true",
        help="search rates from --request-rate (default 8) for --slo-p99-e2e-ms",
    )
    search.add_argument("--slo-p99-e2e-ms", type=float, default=None)
    search.add_argument("--warmup-s", type=float, default=2.0, help="per probe, not measured")
    search.add_argument("--probe-s", type=float, default=8.0, help="per probe, measured")
    search.add_argument("--min-rate", type=float, default=None, help="default: start / 64")
    search.add_argument("--max-rate", type=float, default=None, help="default: start x 64")
    search.add_argument("--max-probes", type=int, default=10)
    search.add_argument(
        "--tolerance", type=float, default=0.1, help="stop when the bracket is this close"
    )


def run(args: argparse.Namespace, base_url: str, api_key: str | None) -> int:
    if args.find_max_rate:
        return search(args, base_url, api_key)
    workload = Workload(args.num_prompts, args.input_len, args.output_len, args.seed)
    slo = None
    if args.slo_ttft_ms is not None or args.slo_e2e_ms is not None:
        slo = SLO(ttft_s=_seconds(args.slo_ttft_ms), e2e_s=_seconds(args.slo_e2e_ms))
    resources = tempfile.TemporaryDirectory(prefix="inferlab-bench-")
    front = _start_front(args.mode, base_url, api_key, resources)
    target = front.base_url if front else base_url
    bar = tqdm(total=args.num_prompts, disable=args.no_progress, unit="req", leave=False)

    def tick(record: RequestResult) -> None:
        bar.update(1)

    try:
        load = asyncio.run(
            run_load(
                target,
                workload,
                mode="async" if args.mode == "proxy" else args.mode,
                api_key=api_key if front is None else None,
                request_rate=args.request_rate,
                burstiness=args.burstiness,
                max_concurrency=args.max_concurrency,
                users=args.users,
                think_time_s=args.think_time_s,
                time_limit_s=args.time_limit_s,
                on_done=tick,
            )
        )
    except (InferlabError, OSError) as exc:
        print(f"inferlab bench: could not start against {target}: {exc}")
        return 1
    finally:
        bar.close()
        if front is not None:
            service = front.app.state.service  # the proxy or job server this command started
            batcher = service.completions if args.mode == "proxy" else service.service.batcher
            stats = batcher.stats
            print(
                f"{args.mode} batches: {stats.batches}, "
                f"sizes {dict(sorted(stats.batch_sizes.items()))}"
            )
            front.stop()
        resources.cleanup()
    summary = load.summary(slo)
    print(f"inferlab bench: {args.mode} against {base_url}\n")
    print(summary.table())
    print("\n" + rates_line(load, args.request_rate))
    print(history_table(load.records))
    if args.save_json:
        _save(args.save_json, args, summary, load.records)
        print(f"\nsaved to {args.save_json}")
    return 0


def rates_line(load: LoadRun, request_rate: float) -> str:
    """Offered against achieved, and the load generator's lag: was this the load asked for?"""
    achieved = sent_rate([r.sent_s for r in load.records])
    offered = f"{request_rate:.2f} req/s" if math.isfinite(request_rate) else "all at once"
    lag = load.summary().queue_delay
    return (
        f"offered {offered}, sent {achieved:.2f} req/s; load generator lag "
        f"p50 {lag.p50 * 1000:.1f} ms, p99 {lag.p99 * 1000:.1f} ms"
    )


def search(args: argparse.Namespace, base_url: str, api_key: str | None) -> int:
    """`--find-max-rate`: probe rates, print each probe as it ends, then the answer and why the
    search stopped. The server is loaded directly (no proxy or job API in front)."""
    if args.slo_p99_e2e_ms is None:
        print("inferlab bench: --find-max-rate needs --slo-p99-e2e-ms")
        return 2
    target_s = args.slo_p99_e2e_ms / 1000
    start = args.request_rate if math.isfinite(args.request_rate) else 8.0
    clock = ModelClock.of_server(
        base_url, api_key=api_key
    )  # rates, times and the target in the model's time
    print(
        f"inferlab bench: the highest rate against {base_url} whose p99 e2e meets "
        f"{args.slo_p99_e2e_ms:g} ms ({args.warmup_s:g} s warm-up + {args.probe_s:g} s "
        f"measured per probe; model time, the server's time scale {clock.time_scale:g})"
    )

    async def measure(rate: float) -> Any:
        probe = await probe_rate(
            base_url,
            rate,
            p99_target_s=target_s,
            warmup_s=args.warmup_s,
            measure_s=args.probe_s,
            prompt_tokens=args.input_len,
            output_tokens=args.output_len,
            seed=args.seed,
            api_key=api_key,
            clock=clock,
        )
        print(f"probe: {probe.line()}", flush=True)
        return probe

    try:
        result = asyncio.run(
            find_max_rate(
                measure,
                start_rate=start,
                min_rate=args.min_rate,
                max_rate=args.max_rate,
                tolerance=args.tolerance,
                max_probes=args.max_probes,
            )
        )
    except (InferlabError, OSError) as exc:
        print(f"inferlab bench: could not probe {base_url}: {exc}")
        return 1
    except ValueError as exc:
        print(f"inferlab bench: {exc}")
        return 2
    print(result.conclusion())
    return 0


def _start_front(
    mode: str, base_url: str, api_key: str | None, resources: tempfile.TemporaryDirectory[str]
) -> ServerThread | None:
    """The batching proxy or the job API, started in front of the server for this run."""
    if mode == "proxy":
        from ..proxy.app import create_proxy_app

        return ServerThread(create_proxy_app(base_url, upstream_api_key=api_key)).start()
    if mode == "jobs":
        from ..jobs import SQLiteJobStore, create_jobs_app

        store = SQLiteJobStore(Path(resources.name) / "bench-jobs.db")
        return ServerThread(
            create_jobs_app(base_url, store=store, upstream_api_key=api_key)
        ).start()
    return None


def _seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000


def _save(path: str, args: argparse.Namespace, summary: Any, records: list[RequestResult]) -> None:
    options = {
        k: (str(v) if isinstance(v, Lengths) else v) for k, v in vars(args).items() if k != "run"
    }
    document = {
        "options": options,
        "summary": asdict(summary),
        "records": [asdict(record) for record in records],
    }
    with open(path, "w") as file:
        json.dump(document, file, indent=1, default=str)
