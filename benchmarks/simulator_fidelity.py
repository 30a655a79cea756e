"""How faithful is the simulated accelerator? Three measurements, printed side by side.

    python benchmarks/simulator_fidelity.py            # about two minutes on two cores
    python benchmarks/simulator_fidelity.py --quick    # fewer points, for a smoke run

1. The cost model against every H100 calibration point (prefill and decode, 8B and 1B):
   profile ms vs measured ms and the error. Pure arithmetic, no clock.
2. The running engine against the profile: decode steps timed on the wall clock at
   time_scale 1 and 0.1, divided by the scale, vs the ms the profile charged and the H100 took.
3. Capacity: the most concurrent streams the HTTP server (its own process, uvloop) sustains on
   this machine while its clock falls behind by at most 5%. Each stream is a 512-token prompt
   and 256 streamed tokens, all opened at once; lag = the worst lateness of any step in the
   burst / the burst's simulated duration. The KV cache is enlarged for this part: an H100's
   holds only ~521 such sequences (400k tokens / 767), and here we measure the CPU, not HBM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from importlib import resources

import httpx
from _harness import free_port, spawn, stop, wait_until_up

from inferlab import SimulatedModel, get_profile

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


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def stream_burst(
    base_url: str, streams: int, max_tokens: int
) -> tuple[float, float, float, int]:
    """Open `streams` streams at once.

    Returns (worst lag in s, lag / simulated busy time, most streams open at once (counted by
    the client: first token seen, last not yet), tokens received).
    """
    open_now = peak_open = 0
    root = base_url.removesuffix("/v1")
    limits = httpx.Limits(max_connections=streams + 10)
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        before = (await http.get(root + "/metrics")).text
        body = {
            "prompt": "word " * 511,
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "stream": True,
        }

        async def one() -> int:
            nonlocal open_now, peak_open
            received = 0
            async with http.stream("POST", base_url + "/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        received += 1
                        if received == 1:
                            open_now += 1
                            peak_open = max(peak_open, open_now)
            open_now -= 1
            return received

        received = sum(await asyncio.gather(*(one() for _ in range(streams))))
        metrics = (await http.get(root + "/metrics")).text

    def delta(name: str) -> float:
        return _metric(metrics, name) - _metric(before, name)

    busy_s = delta("inferlab:step_duration_seconds_sum")
    worst_lag_s = _metric(metrics, "inferlab:clock_lag_max_seconds")
    return worst_lag_s, worst_lag_s / busy_s, peak_open, received


def capacity_table(quick: bool) -> None:
    print("3. Concurrent streams the HTTP server sustains (time_scale 1, own process,")
    print("   KV cache enlarged to 4M tokens so that CPU, not simulated HBM, is the limit)\n")
    header = ("streams", "open at once", "worst lag", "lag", "tokens")
    print("{:>8} {:>13} {:>10} {:>7} {:>8}  verdict".format(*header))
    port = free_port()
    server = spawn(
        "serve", "--port", str(port), "--max-num-seqs", "4096", "--kv-capacity-tokens", "4000000"
    )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        wait_until_up(base_url, server)
        sustained = 0
        for streams in (1000,) if quick else (250, 500, 1000, 1500, 2000):
            worst_s, lag, peak, tokens = asyncio.run(stream_burst(base_url, streams, TOKENS))
            ok = lag <= LAG_LIMIT and tokens == streams * TOKENS
            sustained = peak if ok else sustained
            print(
                f"{streams:>8} {peak:>13} {worst_s * 1000:>8.0f}ms {lag:>7.1%} {tokens:>8}"
                f"  {'ok' if ok else 'falls behind'}"
            )
        print(f"\nmost concurrent streams with the clock <= {LAG_LIMIT:.0%} behind: {sustained}")
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points")
    parser.add_argument("--part", type=int, choices=(1, 2, 3), help="run one part only")
    args = parser.parse_args()
    calibration = load_calibration()
    if args.part in (None, 1):
        cost_model_table(calibration)
    if args.part in (None, 2):
        engine_table(calibration, args.quick)
    if args.part in (None, 3):
        capacity_table(args.quick)


if __name__ == "__main__":
    main()
