"""Autograder for the lessons' exercises (labs/NN_*_exercises_lab.ipynb and exercises_NN.py).

Each test checks one function on worked examples; its message says what to look at. Run
`make check-lab` to grade your labs/, or `pytest tests/lab -k 07` for one lesson's.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random

import pytest

from inferlab import get_profile, simulate
from inferlab.load.metrics import percentile as reference_percentile


def todo(call):
    """Run `call`; an unfinished exercise fails with its TODO, not with a traceback."""
    try:
        return call()
    except NotImplementedError as exc:
        pytest.fail(f"Not built yet: {exc}")


# 00 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("prompt", "output"), [(8, 24), (512, 1), (100, 64)])
def test_00_predicted_latency_matches_the_simulator(exercises, prompt, output):
    profile = get_profile("h100-llama3-8b")
    (expected,) = simulate([(0.0, prompt, output)], profile)
    got = todo(lambda: exercises["00"].predicted_latency_ms(profile, prompt, output))
    assert got == pytest.approx(expected.finished_s * 1000, rel=1e-6), (
        "one prefill for the prompt, then output-1 decode steps, each one token longer"
    )


def test_00_ttft_and_tpot(exercises):
    ttft, tpot = todo(lambda: exercises["00"].ttft_and_tpot(0.0, [0.1, 0.2, 0.4]))
    assert (ttft, tpot) == pytest.approx((0.1, 0.15)), "TPOT: (last - first) / (tokens - 1)"
    assert todo(lambda: exercises["00"].ttft_and_tpot(1.0, [1.25])) == pytest.approx((0.25, 0.0))


# 01 -------------------------------------------------------------------------------------------
def test_01_percentile_interpolates_like_numpy(exercises):
    percentile = exercises["01"].percentile
    assert todo(lambda: percentile([1, 2, 3, 4], 50)) == 2.5
    assert percentile([5], 99) == 5 and math.isnan(percentile([], 50))
    values = [random.Random(seed).expovariate(1.0) for seed in range(101)]
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(reference_percentile(values, q)), (
            f"p{q}: rank (n - 1) * q / 100, then interpolate between its neighbours"
        )


def test_01_threads_needed_is_littles_law_rounded_up(exercises):
    threads_needed = exercises["01"].threads_needed
    assert todo(lambda: threads_needed(100, 0.3)) == 30
    assert threads_needed(10, 0.25) == 3, "2.5 threads cannot exist: round up"


# 02 -------------------------------------------------------------------------------------------
def test_02_backoff_doubles_up_to_the_cap(exercises):
    bound = exercises["02"].backoff_bound_s
    assert [todo(lambda a=a: bound(a, 0.5, 4.0)) for a in range(1, 6)] == [0.5, 1, 2, 4, 4]


@pytest.mark.parametrize(
    ("status", "retry"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False), (422, False)],
)
def test_02_retry_server_trouble_not_bad_requests(exercises, status, retry):
    assert todo(lambda: exercises["02"].is_retryable(status)) is retry


def test_02_signature_check(exercises):
    valid = exercises["02"].signature_is_valid
    body, secret, t = b'{"id":"job-1"}', "s3cret", 1_000_000
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={t},v1={digest}"
    assert todo(lambda: valid(secret, body, header, now=t + 5)), "a genuine, fresh signature"
    assert not valid("other", body, header, now=t + 5), "another secret must not verify"
    assert not valid(secret, body + b" ", header, now=t + 5), "a changed body must not verify"
    assert not valid(secret, body, header, now=t + 301), "an old signature is a replay"
    assert not valid(secret, body, "nonsense", now=t), "malformed headers are invalid, no error"


# 03 -------------------------------------------------------------------------------------------
def test_03_texts_from_sse(exercises):
    lines = [
        "data: null",
        ": ping",
        'data: {"choices": [{"index": 0, "text": " Hello"}]}',
        "",
        'data: {"choices": [{"index": 0, "text": " world"}]}',
        'data: {"choices": [], "usage": {"completion_tokens": 2}}',
        "data: [DONE]",
        'data: {"choices": [{"index": 0, "text": " after the end"}]}',
    ]
    assert todo(lambda: exercises["03"].texts_from_sse(lines)) == [" Hello", " world"]


def test_03_longest_gap(exercises):
    index, gap = todo(lambda: exercises["03"].longest_gap([0.1, 0.2, 0.5, 0.6]))
    assert index == 2 and gap == pytest.approx(0.3)


# 04 -------------------------------------------------------------------------------------------
def test_04_roofline(exercises):
    step = exercises["04"].roofline_step_ms
    h100 = dict(params=8e9, bytes_per_param=2, bandwidth_bps=3e12, flops_per_s=750e12)
    assert todo(lambda: step(1, **h100)) == pytest.approx(16e9 / 3e12 * 1000), "memory-bound"
    assert step(1000, **h100) == pytest.approx(2 * 8e9 * 1000 / 750e12 * 1000), "compute-bound"
    crossover = todo(lambda: exercises["04"].crossover_batch(2, 3e12, 750e12))
    assert crossover == pytest.approx(250)


# 06 -------------------------------------------------------------------------------------------
def test_06_best_setting_and_pareto_front(exercises):
    setting = exercises["06"].Setting
    points = [
        setting(1, 0.01, 10.0, 0.9),
        setting(8, 0.01, 60.0, 0.3),
        setting(8, 0.05, 60.0, 0.35),
        setting(32, 0.05, 80.0, 0.6),
    ]
    best = todo(lambda: exercises["06"].best_setting(points, 0.5))
    assert best == points[1], "the highest throughput under the target; ties go to lower p99"
    assert exercises["06"].best_setting(points, 0.1) is None
    front = todo(lambda: exercises["06"].pareto_front(points))
    assert front == [points[1], points[3]], "settings beaten on both counts are not worth it"


# 07 -------------------------------------------------------------------------------------------
def test_07_step_counts(exercises):
    ex = exercises["07"]
    assert todo(lambda: ex.static_steps([1, 5, 2, 2], 2)) == 7
    assert todo(lambda: ex.continuous_steps([1, 5, 2, 2], 2)) == 5
    lengths = [max(1, round(random.Random(s).expovariate(1 / 20))) for s in range(60)]
    for slots in (1, 4, 16):
        static, continuous = ex.static_steps(lengths, slots), ex.continuous_steps(lengths, slots)
        assert continuous <= static, "continuous batching never needs more steps than static"
        assert continuous >= math.ceil(sum(lengths) / slots), "a step makes at most `slots` tokens"
    assert ex.static_steps(lengths, 1) == ex.continuous_steps(lengths, 1) == sum(lengths)


# 08 -------------------------------------------------------------------------------------------
def test_08_md1_burn_rate_and_budget(exercises):
    ex = exercises["08"]
    assert todo(lambda: ex.md1_mean_latency_s(0.1, 0.5)) == pytest.approx(0.15)
    assert ex.md1_mean_latency_s(0.1, 0.0) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        ex.md1_mean_latency_s(0.1, 1.0)
    assert todo(lambda: ex.burn_rate(30, 1000, 0.99)) == pytest.approx(3.0)
    # 30 days at 99.9%: 43.2 minutes of budget; a burn rate of 2 for 10 days leaves 14.4.
    left = todo(lambda: ex.budget_left_hours(30, 0.999, 2.0, 10))
    assert left * 60 == pytest.approx(43.2 - 28.8)


# 09 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("waiting", "reads", "long_or_bursty", "mode"),
    [
        (True, True, False, "stream"),  # a chat window
        (True, False, False, "sync"),  # a classifier behind an API
        (False, False, True, "async"),  # summarising a document archive overnight
        (True, True, True, "stream"),  # a person is still waiting: do not make them poll
    ],
)
def test_09_choose_mode(exercises, waiting, reads, long_or_bursty, mode):
    choose = exercises["09"].choose_mode
    got = todo(
        lambda: choose(
            person_waiting=waiting, reads_as_it_arrives=reads, long_or_bursty=long_or_bursty
        )
    )
    assert got == mode


def test_09_max_throughput(exercises):
    assert todo(lambda: exercises["09"].max_throughput(8, 0.6)) == pytest.approx(13.33, rel=1e-3)
