"""Every plot returns a Figure with labelled axes, renders to PNG, and shows nothing itself."""

import io

import pytest
from matplotlib.figure import Figure

from inferlab import simulate
from inferlab.engine.profiles import H100_LLAMA3_8B
from inferlab.jobs import QueueSample
from inferlab.lab import plots
from inferlab.load.metrics import RequestResult

SIMULATED = simulate(
    [(0.0, 32, n) for n in (4, 12, 6, 20)], H100_LLAMA3_8B, batching="static", max_num_seqs=2
)
RECORDS = [
    RequestResult(
        index=i, scheduled_s=0.0, done_s=0.1 * (i + 1), first_token_s=0.01, output_tokens=5
    )
    for i in range(5)
]

FIGURES = {
    "latency_cdf": lambda: plots.latency_cdf({"a": [0.1, 0.2], "b": [0.3]}),
    "throughput_latency": lambda: plots.throughput_latency({"x": [(1, 0.1, 0.2), (2, 0.2, 0.5)]}),
    "batch_size_tradeoff": lambda: plots.batch_size_tradeoff([1, 8], [100, 700], [0.008, 0.009]),
    "request_timeline (simulated)": lambda: plots.request_timeline(SIMULATED),
    "request_timeline (records)": lambda: plots.request_timeline(RECORDS),
    "ttft_vs_e2e": lambda: plots.ttft_vs_e2e(RECORDS),
    "roofline": lambda: plots.roofline(
        [1, 64], [8.1, 10.0], memory_ms=5.4, compute_ms_per_sequence=0.02
    ),
    "latency_vs_load": lambda: plots.latency_vs_load(
        [0.5, 0.9], {"mean": [0.2, 0.6]}, predicted_s={"M/D/1": ([0.1, 0.9], [0.1, 0.6])}
    ),
    "queue_depth": lambda: plots.queue_depth(
        [QueueSample(0.0, 5, 2, 2, 0), QueueSample(0.1, 3, 2, 2, 2)], marks=[(0.05, "scale")]
    ),
    "inter_token_gaps": lambda: plots.inter_token_gaps(
        {"one": RequestResult(index=0, scheduled_s=0, done_s=1, token_times_s=[0.1, 0.2, 0.35])}
    ),
}


@pytest.mark.parametrize("make", FIGURES.values(), ids=FIGURES.keys())
def test_each_plot_is_a_labelled_figure_that_renders(make):
    figure = make()
    assert isinstance(figure, Figure)
    for ax in figure.axes:
        assert ax.get_xlabel() or ax.get_ylabel(), "every axis says what it measures"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_the_timeline_colours_requests_by_the_batch_they_rode_in():
    """Static, two at a time: requests 0-1 share batch one, 2-3 batch two: two colours."""
    figure = plots.request_timeline(SIMULATED)
    colours = {bar.get_facecolor()[:3] for bar in figure.axes[0].patches}
    assert len(colours) == 2
