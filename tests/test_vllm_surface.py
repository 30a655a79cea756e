"""vLLM's surface: its flags, its extra routes, and /metrics as vLLM v1 names and labels it.

The metrics test sends known traffic on virtual time and checks names, kinds, labels and counts,
so a vLLM Grafana dashboard (examples/online_serving/prometheus_grafana) finds every family.
"""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferlab import SimulatedModel, create_app
from inferlab.cli.main import build_parser, main
from inferlab.engine.clock import VirtualClock
from inferlab.serve.settings import ServerSettings

pytestmark = pytest.mark.anyio

BASE = "http://inferlab.test"
SYSTEM = "You are a careful assistant who answers in short sentences. " * 8  # 88 tokens

FAMILIES = {  # vLLM v1's name (without _total) -> kind
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:cache_config_info": "gauge",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:num_preemptions": "counter",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:request_prefill_time_seconds": "histogram",
    "vllm:request_decode_time_seconds": "histogram",
    "vllm:request_inference_time_seconds": "histogram",
    "vllm:request_prompt_tokens": "histogram",
    "vllm:request_generation_tokens": "histogram",
    "vllm:iteration_tokens_total": "histogram",
}


def _client(**settings):
    model = SimulatedModel("h100-llama3-8b", clock=VirtualClock(), name="llama", **settings)
    transport = httpx.ASGITransport(app=create_app(model))
    return model, httpx.AsyncClient(transport=transport, base_url=BASE)


def _scrape(text):
    samples = {}
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return families, samples


async def test_metrics_carry_vllm_families_labels_and_counts():
    """Two requests with a shared 88-token system prompt, 4 tokens each, prefix caching on.

    Each prompt is 88 + 5 = 93 tokens: 5 full blocks. The second request hits the 80 tokens of
    the first one's blocks. Counts: 2 requests, 186 prompt tokens, 8 generated, 186 queried, 80
    hit, 6 inter-token gaps (3 per request), no preemption.
    """
    model, client = _client(enable_prefix_caching=True)
    async with client:
        for question in ("What is a token?", "What is a batch?"):
            body = {"prompt": SYSTEM + question, "max_tokens": 4, "ignore_eos": True}
            assert (await client.post("/v1/completions", json=body)).status_code == 200
        families, samples = _scrape((await client.get("/metrics")).text)
    assert {name: families.get(name) for name in FAMILIES} == FAMILIES
    labels = (("engine", "0"), ("model_name", "llama"))

    def value(name, **extra):
        return samples[(name, tuple(sorted((*labels, *extra.items()))))]

    assert value("vllm:prompt_tokens_total") == 186
    assert value("vllm:generation_tokens_total") == 8
    assert value("vllm:request_success_total", finished_reason="length") == 2
    assert value("vllm:prefix_cache_queries_total") == 186
    assert value("vllm:prefix_cache_hits_total") == 80
    assert value("vllm:num_preemptions_total") == 0
    assert value("vllm:num_requests_running") == 0
    assert value("vllm:time_to_first_token_seconds_count") == 2
    assert value("vllm:inter_token_latency_seconds_count") == 6
    assert value("vllm:e2e_request_latency_seconds_count") == 2
    assert value("vllm:request_prompt_tokens_sum") == 186
    assert value("vllm:request_generation_tokens_sum") == 8
    # vLLM's buckets: TTFT starts at 1 ms, the latency family at 0.3 s, token counts 1-2-5
    assert value("vllm:time_to_first_token_seconds_bucket", le="0.001") == 0
    assert value("vllm:request_queue_time_seconds_bucket", le="0.3") == 2
    assert value("vllm:request_prompt_tokens_bucket", le="5000.0") == 2
    config = [key for key in samples if key[0] == "vllm:cache_config_info"]
    assert dict(config[0][1])["enable_prefix_caching"] == "True"
    assert dict(config[0][1])["num_gpu_blocks"] == str(model.scheduler.pool.num_blocks)


async def test_a_step_that_runs_out_of_blocks_counts_a_preemption():
    """4 blocks of 16 tokens (5 with vLLM's null block): two requests of 20 + 20 tokens need 3
    blocks each at their longest, so the newer is preempted once the older grows past 32."""
    _, client = _client(num_gpu_blocks_override=5)
    async with client:
        # one request with two prompts: both reach the scheduler together (two separate
        # requests on a virtual clock could run one after the other and never compete)
        body = {"prompt": ["word " * 20] * 2, "max_tokens": 20, "ignore_eos": True}
        await client.post("/v1/completions", json=body)
        _, samples = _scrape((await client.get("/metrics")).text)
    key = ("vllm:num_preemptions_total", (("engine", "0"), ("model_name", "llama")))
    assert samples[key] >= 1


async def test_iteration_tokens_count_computed_tokens_of_steps_with_output():
    """A 40-token prompt in a 16-token budget: steps of 16, 16 and 8 tokens, the last sampling
    its first token, then one decode. Sent again, 32 of its tokens hit the cache. vLLM observes
    only steps with outputs, and the prompt tokens they computed: 40 + 1, 1, then 8 + 1, 1."""
    _, client = _client(max_num_batched_tokens=16, enable_prefix_caching=True)
    body = {"prompt": " ".join(f"w{i}" for i in range(40)), "max_tokens": 2, "ignore_eos": True}
    async with client:
        for _ in range(2):
            await client.post("/v1/completions", json=body)
        _, samples = _scrape((await client.get("/metrics")).text)
    labels = (("engine", "0"), ("model_name", "llama"))
    assert samples[("vllm:iteration_tokens_total_count", labels)] == 4
    assert samples[("vllm:iteration_tokens_total_sum", labels)] == 41 + 1 + 9 + 1
    assert samples[("vllm:prefix_cache_hits_total", labels)] == 32


async def test_tokenize_detokenize_and_version():
    _, client = _client()
    async with client:
        tokens = (await client.post("/tokenize", json={"prompt": "Hello, world!"})).json()
        assert (tokens["count"], tokens["max_model_len"]) == (4, 8192)
        text = (await client.post("/detokenize", json={"tokens": tokens["tokens"]})).json()
        assert text == {"prompt": "Hello, world!"}
        chat = {"messages": [{"role": "user", "content": "Hi"}]}
        assert (await client.post("/tokenize", json=chat)).json()["count"] > 1
        unknown = await client.post("/detokenize", json={"tokens": [-5]})
        assert unknown.status_code == 400 and "unknown token ids" in unknown.text
        assert (await client.get("/version")).json()["version"]


async def test_reset_prefix_cache_forgets_cached_blocks():
    """A repeated prompt hits the cache; after POST /reset_prefix_cache it misses again."""
    model, client = _client(enable_prefix_caching=True)
    body = {"prompt": SYSTEM, "max_tokens": 2, "ignore_eos": True}
    async with client:
        await client.post("/v1/completions", json=body)
        await client.post("/v1/completions", json=body)
        hits = model.scheduler.prefix_cache_stats.hits
        assert (await client.post("/reset_prefix_cache")).status_code == 200
        await client.post("/v1/completions", json=body)
    assert hits == 80 and model.scheduler.prefix_cache_stats.hits == 80


def test_serve_accepts_vllm_flag_names():
    args = build_parser().parse_args(
        [
            "serve",
            "--max-num-seqs", "64",
            "--max-num-batched-tokens", "2048",
            "--max-model-len", "4096",
            "--block-size", "32",
            "--gpu-memory-utilization", "0.5",
            "--no-enable-chunked-prefill",
            "--enable-prefix-caching",
            "--served-model-name", "llama",
            "--api-key", "k",
        ]
    )  # fmt: skip
    assert (args.max_num_seqs, args.max_num_batched_tokens, args.max_model_len) == (64, 2048, 4096)
    assert (args.block_size, args.gpu_memory_utilization) == (32, 0.5)
    assert (args.enable_chunked_prefill, args.enable_prefix_caching) == (False, True)
    assert (args.served_model_name, args.api_key) == ("llama", "k")
    defaults = ServerSettings.from_arguments(build_parser().parse_args(["serve"]))
    assert (defaults.enable_chunked_prefill, defaults.max_num_batched_tokens) == (True, 8192)


@pytest.mark.parametrize("flag", ["--block-size=0", "--gpu-memory-utilization=1.5"])
def test_bad_engine_flags_are_refused_plainly(flag):
    args = build_parser().parse_args(["serve", flag])
    with pytest.raises(ValueError, match="block_size|gpu_memory_utilization"):
        ServerSettings.from_arguments(args)
    assert main(["serve", flag]) == 2  # said plainly, no traceback
