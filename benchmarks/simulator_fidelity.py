"""How faithful is the simulated accelerator? Three measurements, printed side by side.

    python benchmarks/simulator_fidelity.py            # about six minutes on two cores
    python benchmarks/simulator_fidelity.py --quick    # fewer points, for a smoke run

1. The cost model against every H100 calibration point (prefill and decode, 8B and 1B):
   profile ms vs measured ms and the error. Pure arithmetic, no clock.
2. The running engine against the profile: decode steps timed on the wall clock at
   time_scale 1 and 0.1, divided by the scale, vs the ms the profile charged and the H100 took.
3. Capacity: the most concurrent streams the HTTP server (its own process, uvloop) sustains on
   this machine within 5% of simulate(). Each stream is a 512-token prompt and 256 streamed
   tokens, all opened at once by the course's lean client; behind = the burst's span (first
   request sent to last token received) over simulate() of the same arrivals, minus 1; the
   server's CPU share says whether it or the client set the pace. Three bursts, the median.
   The KV cache is enlarged for this part: an H100's holds only ~588 such sequences (452k
   tokens / 768), and here we measure the CPU, not HBM. Measured 2026-12-02 (load 1-2): 256,
   1,000 and 2,000 streams 1.1%, 0.8% and 0.8% behind, the server at 20%, 29% and 42% of a
   core; 256 streams stay within 5% up to time_scale 0.5 (1.5%) and not at 0.2 (11.2%).
4. Published vLLM runs replayed in virtual time (`--part 4`, a few seconds): Llama-3.1-8B on one
   GPU, vLLM's own benchmark (`benchmark_serving.py` / `vllm bench serve`), with the settings of
   the run; printed: duration, median TTFT and median TPOT (or ITL), published vs simulated,
   and the error. Where the sources fall short of the ideal replay, the table says so.

   Each run is replayed with the API server's cost off ("engine only") and on (the default,
   engine/api_server.py: 10 ms + 7.5 µs a prompt token before the engine, 7.5 µs an output
   token after each step), so the table shows what the front end explains.

   What it showed (2026-12-02), measured profile, engine only -> with the API server's cost:

       run                 duration s        median TTFT ms             median TPOT / ITL ms
       rate inf, 1000      28.65 -> 28.67    3229 -> 3280 (pub. 9460)   47.3 -> 47.3 (48.8)
       qps 1, H200         217.7 -> 217.7    13.1 -> 24.5 (pub. 29.0)   8.48 -> 8.48 (8.30)
       qps 4, H200         57.7 -> 57.7      13.9 -> 25.5 (pub. 33.9)   8.61 -> 8.61 (11.40)

   The front end's cost moves TTFT only, as it should: at light load the error falls from
   -55% / -59% to -16% / -25%; per-token latency and duration do not move. What is still wrong:
   (a) at rate inf TTFT stays 65% low: 1,000 requests at once keep vLLM's one API-server
   process busy with their output (1,000 streams' chunks every step), which delays every first
   token, and the model charges output processing as a delay, never as a queue; ShareGPT's real
   lengths also have a longer tail than the exponential stand-in; (b) the rest of the light-load
   TTFT gap (~5-8 ms) is the client and the network, which no server model should include;
   (c) two runs are on an H200, whose faster HBM the H100 profile does not know, and at 4
   requests/s its ITL is 24% low. Duration at a fixed request rate is set by the arrivals, so
   its 8-13% says little.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import statistics
import time
from dataclasses import dataclass
from importlib import resources

import httpx
from _harness import cpu_s, free_port, spawn, stop, wait_until_up

from inferlab import SimulatedModel, get_profile, simulate
from inferlab.wire._http1 import Http1Transport

MODELS = {"llama3.1-8b": "h100-llama3-8b", "llama3.2-1b": "h100-llama3-1b"}
LAG_LIMIT = 0.05
TOKENS = 256  # per stream: long enough that all streams of a burst overlap


def load_calibration() -> dict:
    text = resources.files("inferlab").joinpath("data/h100_calibration.json").read_text()
    return json.loads(text)


# ---------------------------------------------------------------------------------------------
# 1. Cost model vs measurement


def cost_model_table(calibration: dict) -> None:
    print("1. Cost model vs H100 measurements (CUDA-graph ms)\n")
    print(f"{'model':12} {'kind':8} {'shape':>16} {'measured':>9} {'profile':>9} {'error':>7}")
    for model_key, profile_name in MODELS.items():
        profile = get_profile(profile_name)
        errors: dict[str, list[float]] = {"prefill": [], "decode": []}
        for point in calibration["models"][model_key]["prefill"]:
            batch, tokens = point["B"], point["tokens"]
            predicted = profile.prefill_ms([tokens // batch] * batch)
            errors["prefill"].append(
                _row(
                    model_key, "prefill", f"{batch}x{tokens // batch}", point["graph_ms"], predicted
                )
            )
        for point in calibration["models"][model_key]["decode"]:
            batch, ctx = point["B"], point["ctx"]
            predicted = profile.decode_ms([ctx] * batch)
            errors["decode"].append(
                _row(model_key, "decode", f"B={batch} ctx={ctx}", point["graph_ms"], predicted)
            )
        for kind, values in errors.items():
            mean, worst = statistics.mean(values), max(values)
            print(f"{'':12} {kind:8} {'mean |error|':>16} {mean:>27.1%}   (max {worst:.1%})")
        everything = errors["prefill"] + errors["decode"]
        print(f"{'':12} {'all':8} {'mean |error|':>16} {statistics.mean(everything):>27.1%}\n")


def _row(model: str, kind: str, shape: str, measured: float, predicted: float) -> float:
    error = (predicted - measured) / measured
    print(f"{model:12} {kind:8} {shape:>16} {measured:>9.2f} {predicted:>9.2f} {error:>+7.1%}")
    return abs(error)


# ---------------------------------------------------------------------------------------------
# 2. The running engine vs its profile


async def time_decode_steps(batch: int, time_scale: float, steps: int) -> tuple[float, float]:
    """Mean wall ms per decode step (scaled back to simulated ms) and the profile's mean ms."""
    model = SimulatedModel("h100-llama3-8b", time_scale=time_scale, max_num_seqs=1024)
    marks: list[tuple[float, float]] = []  # (wall time at emission, simulated step ms)

    def on_step(step) -> None:
        if not step.prefill:
            marks.append((time.perf_counter(), step.duration_s * 1000))

    model.step_listeners.append(on_step)
    prompt = "word " * 511  # 511 words + nothing else = 511 tokens; ctx starts at 512

    async def one() -> None:
        async for _ in model.generate(prompt, max_tokens=steps + 1, ignore_eos=True):
            pass

    await asyncio.gather(*(one() for _ in range(batch)))
    await model.aclose()
    wall_ms = (marks[-1][0] - marks[0][0]) * 1000 / time_scale / (len(marks) - 1)
    profile_ms = statistics.mean(ms for _, ms in marks[1:])
    return wall_ms, profile_ms


def engine_table(calibration: dict, quick: bool) -> None:
    print("2. Engine wall clock vs profile, decode steps at ctx≈512 (8B)\n")
    print(f"{'B':>4} {'scale':>6} {'engine':>8} {'profile':>8} {'error':>7} {'H100':>7}")
    measured = {
        (p["B"], p["ctx"]): p["graph_ms"] for p in calibration["models"]["llama3.1-8b"]["decode"]
    }
    errors = []
    for batch in (1, 8, 32) if quick else (1, 8, 32, 128, 256):
        for time_scale in (1.0, 0.1):
            steps = 30 if time_scale == 1.0 else 100
            wall_ms, profile_ms = asyncio.run(time_decode_steps(batch, time_scale, steps))
            error = (wall_ms - profile_ms) / profile_ms
            errors.append(abs(error))
            print(
                f"{batch:>4} {time_scale:>6} {wall_ms:>8.2f} {profile_ms:>8.2f} "
                f"{error:>+7.1%} {measured[(batch, 512)]:>7.2f}"
            )
    print(f"\nmean |error| of the engine against its profile: {statistics.mean(errors):.2%}\n")


# ---------------------------------------------------------------------------------------------
# 3. Capacity: concurrent streams over HTTP


SERVED = "h100-llama3-8b"  # what `inferlab serve` runs by default


@dataclass(frozen=True)
class Burst:
    """One burst of streams, measured by the client and replayed by `simulate()`."""

    streams: int
    peak_open: int  # most streams open at once (first token seen, last not yet)
    tokens: int
    span_s: float  # first request sent -> last token received, wall = H100 s at time_scale 1
    simulated_s: float  # simulate() of the same requests, arriving when they were sent
    server_cpu: float  # the server's CPU seconds over the span: 1.0 is one core, flat out

    @property
    def behind(self) -> float:
        return self.span_s / self.simulated_s - 1


async def stream_burst(
    base_url: str, server, streams: int, max_tokens: int, time_scale: float = 1.0
) -> Burst:
    """Open `streams` streams at once, with the course's lean client (wire/_http1.py), and
    compare the burst's span with simulate() of the same arrivals. The server's CPU share says
    who set the pace: a server well under one core was waiting for the client, not behind."""
    open_now = peak_open = 0
    sent: list[float] = []
    last: list[float] = []
    transport = Http1Transport(max_connections=streams + 10)
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(300.0)) as http:
        body = {
            "prompt": "word " * 511,
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "stream": True,
        }

        async def one() -> int:
            nonlocal open_now, peak_open
            received = 0
            sent.append(time.perf_counter())
            async with http.stream("POST", base_url + "/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        received += 1
                        if received == 1:
                            open_now += 1
                            peak_open = max(peak_open, open_now)
            last.append(time.perf_counter())
            open_now -= 1
            return received

        cpu_before = cpu_s(server)
        received = sum(await asyncio.gather(*(one() for _ in range(streams))))
        server_cpu = cpu_s(server) - cpu_before
    first = min(sent)  # wall seconds read as H100 seconds through the server's time scale
    arrivals = [((t - first) / time_scale, 512, max_tokens) for t in sent]
    replay = simulate(
        arrivals, get_profile(SERVED), max_num_seqs=4096, kv_capacity_tokens=4_000_000
    )
    span_s = (max(last) - first) / time_scale
    simulated_s = max(seq.finished_s for seq in replay)
    wall_s = max(last) - first
    return Burst(streams, peak_open, received, span_s, simulated_s, server_cpu / wall_s)


def capacity_table(quick: bool) -> None:
    print("3. Concurrent streams the HTTP server sustains (time_scale 1, own process,")
    print("   KV cache enlarged to 4M tokens so that CPU, not simulated HBM, is the limit);")
    print(f"   three bursts each, the median; load average {os.getloadavg()[0]:.1f}\n")
    header = ("streams", "open at once", "span s", "simulated s", "behind", "server CPU")
    print("{:>8} {:>13} {:>8} {:>12} {:>7} {:>11}  verdict".format(*header))
    port = free_port()
    server = spawn(
        "serve", "--port", str(port), "--max-num-seqs", "4096", "--kv-capacity-tokens", "4000000"
    )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        wait_until_up(base_url, server)
        asyncio.run(stream_burst(base_url, server, 50, 8))  # warm: connections, first steps
        sustained = 0
        for streams in (1000,) if quick else (256, 1000, 2000):
            runs = [asyncio.run(stream_burst(base_url, server, streams, TOKENS)) for _ in range(3)]
            burst = sorted(runs, key=lambda run: run.behind)[1]  # the median of three
            ok = burst.behind <= LAG_LIMIT and burst.tokens == streams * TOKENS
            sustained = burst.peak_open if ok else sustained
            who = "" if ok else (" (the server)" if burst.server_cpu > 0.9 else " (the client)")
            print(
                f"{streams:>8} {burst.peak_open:>13} {burst.span_s:>8.2f}"
                f" {burst.simulated_s:>12.2f} {burst.behind:>7.1%} {burst.server_cpu:>10.0%}  "
                f"{'ok' if ok else 'falls behind' + who}"
            )
        print(f"\nmost concurrent streams within {LAG_LIMIT:.0%} of simulate(): {sustained}")
        print("('the client': the server used under 90% of a core, so the load side set the pace)")
    finally:
        stop(server)
    if not quick:
        scale_ladder(256)


def scale_ladder(streams: int) -> None:
    """How much faster than an H100 may the engine run with `streams` streams and still keep
    within LAG_LIMIT of simulate()? The same bursts at each time scale, spans read in H100 time."""
    print(f"\n   {streams} streams at faster time scales (spans in H100 seconds):")
    fastest = None
    for time_scale in (1.0, 0.5, 0.2, 0.1):
        port = free_port()
        server = spawn(
            "serve", "--port", str(port), "--max-num-seqs", "4096",
            "--kv-capacity-tokens", "4000000", "--time-scale", str(time_scale),
        )  # fmt: skip
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            wait_until_up(base_url, server)
            asyncio.run(stream_burst(base_url, server, 50, 8, time_scale))
            runs = [
                asyncio.run(stream_burst(base_url, server, streams, TOKENS, time_scale))
                for _ in range(3)
            ]
        finally:
            stop(server)
        burst = sorted(runs, key=lambda run: run.behind)[1]
        ok = burst.behind <= LAG_LIMIT
        fastest = time_scale if ok else fastest
        print(
            f"   time_scale {time_scale:<4g} span {burst.span_s:6.2f} s, simulated "
            f"{burst.simulated_s:6.2f} s, behind {burst.behind:6.1%}, server CPU "
            f"{burst.server_cpu:4.0%}  {'ok' if ok else 'falls behind'}"
        )
        if not ok:
            break
    print(f"   fastest within {LAG_LIMIT:.0%}: time_scale {fastest}")


# ---------------------------------------------------------------------------------------------
# 4. Published vLLM runs, replayed


@dataclass(frozen=True)
class PublishedRun:
    """One published `benchmark_serving.py` result and what we know of its inputs."""

    name: str
    source: str  # where it was published
    gpu: str
    num_prompts: int
    request_rate: float  # requests/s, Poisson; inf = all at once
    mean_input: float  # tokens per prompt (ShareGPT as vLLM's benchmark filters it)
    mean_output: float
    duration_s: float
    median_ttft_ms: float
    median_tpot_ms: float  # or median ITL where only that is published (see `per_token`)
    per_token: str = "TPOT"


# ShareGPT's per-request lengths are not in the sources, only their totals. PR #18566 gives
# 229,711 input and 203,068 output tokens over 1,000 prompts: 229.7 and 203.1 a request. The
# replay draws lengths from exponentials with those means (clipped to 4..2,048), a stand-in for
# ShareGPT's long-tailed shape. Seeded, so the replay is the same every time.
_SHAREGPT_IN, _SHAREGPT_OUT = 229.7, 203.1

PUBLISHED = [
    PublishedRun(
        "PR 18566: ShareGPT 1000 prompts, rate inf",
        "github.com/vllm-project/vllm/pull/18566 (vllm serve Llama-3.1-8B-Instruct, defaults)",
        "not stated in the PR (a vLLM maintainer's run; H100-class by its throughput)",
        1000, math.inf, _SHAREGPT_IN, _SHAREGPT_OUT, 30.85, 9459.70, 48.84,
    ),
    PublishedRun(
        "vLLM nightly: llama8B sharegpt qps 1",
        "vLLM CI nightly benchmark tables (serving_llama8B_tp1_sharegpt_qps_1, 200 prompts)",
        "H200 (not H100: ~1.4x the HBM bandwidth, so decode should be faster than simulated)",
        200, 1.0, _SHAREGPT_IN, _SHAREGPT_OUT, 200 / 0.993912, 29.02, 8.30, "ITL",
    ),
    PublishedRun(
        "vLLM nightly: llama8B sharegpt qps 4",
        "vLLM CI nightly benchmark tables (serving_llama8B_tp1_sharegpt_qps_4, 200 prompts)",
        "H200 (as above)",
        200, 4.0, _SHAREGPT_IN, _SHAREGPT_OUT, 200 / 3.914463, 33.94, 11.40, "ITL",
    ),
]  # fmt: skip


def _replay_requests(run: PublishedRun, seed: int = 0) -> list[tuple[float, int, int]]:
    rng = random.Random(seed)

    def length(mean: float) -> int:
        return max(4, min(2048, round(rng.expovariate(1 / mean))))

    arrival, requests = 0.0, []
    for _ in range(run.num_prompts):
        requests.append((arrival, length(run.mean_input), length(run.mean_output)))
        if math.isfinite(run.request_rate):
            arrival += rng.expovariate(run.request_rate)
    return requests


def _replay(
    run: PublishedRun, profile_name: str, api_server_cost: float
) -> tuple[float, float, float]:
    """(duration s, median TTFT ms, median TPOT or ITL ms) of the run, simulated with vLLM
    v1's defaults on an 80 GB GPU: chunked prefill, 8,192-token budget, 1,024 sequences."""
    profile = get_profile(profile_name)
    done = simulate(
        _replay_requests(run),
        profile,
        max_num_seqs=1024,
        enable_prefix_caching=True,
        api_server_cost=api_server_cost,
    )
    duration = max(seq.finished_s for seq in done)
    ttft = statistics.median((seq.first_token_s - seq.arrival_s) * 1000 for seq in done)
    if run.per_token == "ITL":
        gaps = [b - a for seq in done for a, b in itertools.pairwise(seq.token_times_s)]
        per_token = statistics.median(gaps) * 1000
    else:
        per_token = statistics.median(
            (seq.finished_s - seq.first_token_s) / (seq.generated - 1) * 1000
            for seq in done
            if seq.generated > 1
        )
    return duration, ttft, per_token


# (profile, api_server_cost): the measured engine alone, then with the API server's cost
REPLAYED = [("h100-llama3-8b", 0.0), ("h100-llama3-8b", 1.0), ("h100-llama3-8b-compiled", 1.0)]


def published_table() -> None:
    print("\n4. Published vLLM runs (Llama-3.1-8B, one GPU) replayed in virtual time\n")
    for run in PUBLISHED:
        print(f"{run.name}\n  source: {run.source}\n  GPU: {run.gpu}")
        print(f"  {'profile':34} {'metric':12} {'published':>10} {'simulated':>10} {'error':>7}")
        for profile_name, api_server_cost in REPLAYED:
            simulated = _replay(run, profile_name, api_server_cost)
            published = (run.duration_s, run.median_ttft_ms, run.median_tpot_ms)
            labels = ("duration s", "median TTFT", f"median {run.per_token}")
            shown = profile_name + ("" if api_server_cost else " (engine only)")
            for label, ours, theirs in zip(labels, simulated, published, strict=True):
                error = (ours - theirs) / theirs
                print(f"  {shown:34} {label:12} {theirs:>10.2f} {ours:>10.2f} {error:>+7.0%}")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points")
    parser.add_argument("--part", type=int, choices=(1, 2, 3, 4), help="run one part only")
    args = parser.parse_args()
    calibration = load_calibration()
    if args.part in (None, 1):
        cost_model_table(calibration)
    if args.part in (None, 2):
        engine_table(calibration, args.quick)
    if args.part in (None, 3):
        capacity_table(args.quick)
    if args.part in (None, 4):
        published_table()


if __name__ == "__main__":
    main()
