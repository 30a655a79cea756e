import math

import pytest

from inferlab.load.metrics import SLO, RequestResult, percentile, summarize


def result(index, sent, done, tokens=10, first=None, ok=True, scheduled=None, error_type=None):
    times = (
        [] if first is None else [first + (done - first) * i / (tokens - 1) for i in range(tokens)]
    )
    return RequestResult(
        index=index,
        scheduled_s=sent if scheduled is None else scheduled,
        sent_s=sent,
        done_s=done,
        first_token_s=first,
        token_times_s=times,
        ok=ok,
        error_type=error_type,
        output_tokens=tokens if ok else 0,
    )


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 100, 4),
        ([1, 2, 3, 4], 0, 1),
        ([10, 20], 90, 19.0),
        ([5], 99, 5),
    ],
)
def test_percentiles_interpolate_linearly(values, q, expected):
    """p90 of [10, 20]: rank 0.9 between them -> 10 + 0.9 x 10 = 19."""
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan():
    assert math.isnan(percentile([], 50))


def test_summary_textbook_two_requests():
    """Sent at 0 s and 1 s, done at 2 s and 3 s, 10 tokens each, first tokens at 0.5 and 1.2:

    duration 3 s -> 2/3 req/s and 20/3 tokens/s; e2e 2 s each; TTFT 0.5 and 0.2 s (mean 0.35);
    TPOT (2 - 0.5)/9 = 1/6 s and (3 - 1.2)/9 = 0.2 s.
    """
    records = [result(0, 0.0, 2.0, first=0.5), result(1, 1.0, 3.0, first=1.2)]
    s = summarize(records)
    assert s.duration_s == 3.0
    assert s.request_throughput == pytest.approx(2 / 3)
    assert s.output_throughput == pytest.approx(20 / 3)
    assert s.e2e.mean == pytest.approx(2.0)
    assert s.ttft.mean == pytest.approx(0.35)
    assert s.tpot.p50 == pytest.approx((1 / 6 + 0.2) / 2)
    assert s.itl.mean == pytest.approx((1.5 / 9 * 9 + 1.8 / 9 * 9) / 18)


def test_failures_count_in_the_error_rate_not_in_the_latencies():
    records = [result(0, 0.0, 1.0), result(1, 0.0, 0.1, ok=False, error_type="APIStatusError")]
    s = summarize(records)
    assert (s.failed, s.error_rate, s.errors) == (1, 0.5, {"APIStatusError": 1})
    assert s.e2e.p99 == pytest.approx(1.0)


def test_goodput_counts_only_requests_within_every_slo():
    """Three requests over 2 s; TTFT 0.1, 0.3, 0.1 s; the third failed. SLO TTFT <= 0.2 s:
    only the first is good -> goodput 1 / 2 s = 0.5 req/s."""
    records = [
        result(0, 0.0, 1.0, first=0.1),
        result(1, 0.0, 1.0, first=0.3),
        result(2, 1.0, 2.0, first=1.1, ok=False),
    ]
    assert summarize(records, slo=SLO(ttft_s=0.2)).goodput == pytest.approx(0.5)


def test_queue_delay_is_the_wait_before_sending():
    """Meant for t=0, sent at t=0.25: the load generator itself was behind by 250 ms."""
    s = summarize([result(0, 0.25, 1.0, scheduled=0.0)])
    assert s.queue_delay.p50 == pytest.approx(0.25)


def test_littles_law_compares_sampled_load_with_arrival_rate_times_latency():
    """4 requests in 2 s -> λ = 2/s; each takes 1 s -> W = 1 s; λW = 2. Samples say 2.2."""
    records = [result(i, i * 0.5, i * 0.5 + 1.0) for i in range(4)]
    law = summarize(records, duration_s=2.0, in_flight_samples=[2, 2, 3, 2, 2]).littles_law
    assert law.predicted_in_flight == pytest.approx(2.0)
    assert law.relative_error == pytest.approx(0.1)


def test_the_table_reads_like_vllm_bench():
    table = summarize([result(0, 0.0, 1.0, first=0.2)], slo=SLO(e2e_s=2)).table()
    assert "throughput (req/s)" in table and "goodput" in table and "ttft" in table


def test_tpot_is_unknown_when_the_answer_came_in_one_piece():
    """Not streamed: one arrival time, so no time per token can be seen; TTFT is the e2e."""
    record = RequestResult(
        index=0,
        scheduled_s=0.0,
        sent_s=0.0,
        done_s=1.0,
        first_token_s=1.0,
        token_times_s=[1.0],
        output_tokens=16,
    )
    assert record.tpot_s is None and record.ttft_s == record.e2e_latency_s
    assert "-" in summarize([record]).table().split("tpot")[1].splitlines()[0]
