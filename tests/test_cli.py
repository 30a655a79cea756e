import json
import threading

import pytest

from inferlab import ServerThread, create_app
from inferlab.cli.main import build_parser, main
from inferlab.proxy.settings import ProxySettings
from inferlab.serve.settings import ServerSettings


def test_doctor_passes_against_a_healthy_server(live_server, capsys):
    assert main(["doctor", "--base-url", live_server.base_url]) == 0
    out = capsys.readouterr().out
    assert "list of prompts" in out and "0 failed" in out


def test_doctor_reports_a_dead_server_without_crashing(capsys):
    assert main(["doctor", "--base-url", "http://127.0.0.1:9/v1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  GET /models" in out and "ServerUnavailableError" in out


def test_serve_flags_are_the_fields_of_its_settings():
    """`--max-num-seqs` sets ServerSettings.max_num_seqs: a flag and its field share a name."""
    args = build_parser().parse_args(
        ["serve", "--batching", "static", "--time-scale", "0.1", "--max-num-seqs", "8"]
    )
    settings = ServerSettings.from_arguments(args)
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    assert (settings.batching, settings.time_scale, settings.max_num_seqs) == ("static", 0.1, 8)
    assert settings.profile == "h100-llama3-8b" and settings.api_key is None


def test_proxy_flags_and_their_defaults():
    args = build_parser().parse_args(
        ["proxy", "--upstream", "http://127.0.0.1:8080/v1", "--no-list-prompts"]
    )
    settings = ProxySettings.from_arguments(args)
    assert args.port == 9000 and (settings.max_batch_size, settings.batch_wait_timeout_s) == (
        8,
        0.01,
    )
    assert settings.list_prompts is False


def test_settings_json_gives_every_setting_and_flags_win():
    args = build_parser().parse_args(
        [
            "serve",
            "--settings-json",
            '{"max_num_seqs": 4, "time_scale": 0.5}',
            "--time-scale",
            "0.2",
        ]
    )
    settings = ServerSettings.from_arguments(args, **json.loads(args.settings_json))
    assert (settings.max_num_seqs, settings.time_scale) == (4, 0.2)


def test_a_bad_setting_is_a_clear_message_not_a_traceback(capsys):
    assert main(["serve", "--settings-json", '{"max_num_seq": 4}']) == 2
    assert "unknown setting 'max_num_seq'" in capsys.readouterr().err
    assert main(["proxy", "--max-batch-size", "0"]) == 2  # and no --upstream either
    assert "upstream" in capsys.readouterr().err


def test_bench_prints_its_table_and_saves_every_record(live_server, capsys, tmp_path):
    saved = tmp_path / "run.json"
    code = main(
        [
            "bench",
            "--base-url",
            live_server.base_url,
            "--num-prompts",
            "12",
            "--output-len",
            "8",
            "--mode",
            "stream",
            "--no-progress",
            "--save-json",
            str(saved),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "throughput (req/s)" in out and "ttft" in out
    assert "offered all at once, sent" in out and "load generator lag" in out
    assert "history, 12 slices" in out and "lag p99 (ms)" in out
    document = json.loads(saved.read_text())
    assert len(document["records"]) == 12 and document["summary"]["failed"] == 0


def test_bench_finds_the_highest_rate_for_a_p99_and_says_why_it_stopped(live_server, capsys):
    """A generous target and a narrow range: every probe meets, so the search stops at the
    ceiling and says so; each probe is printed with its sample size. In model time: the test
    server runs 100 times faster than an H100, so 0.4 req/s of H100 time is 40 of ours."""
    code = main(
        [
            "bench",
            "--base-url",
            live_server.base_url,
            "--find-max-rate",
            "--slo-p99-e2e-ms",
            "200000",  # 200 s of H100 time, 2 s of ours: met on any machine
            "--request-rate",
            "0.2",
            "--max-rate",
            "0.4",
            "--warmup-s",
            "20",
            "--probe-s",
            "150",
            "--output-len",
            "4",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("probe: offered") == 2 and "n=" in out and "lag p99" in out
    assert "time scale 0.01" in out and "highest rate that meets: 0.40 req/s" in out
    assert "stopped: the ceiling of 0.4 req/s still meets" in out


def test_bench_rate_search_needs_its_target(live_server, capsys):
    assert main(["bench", "--base-url", live_server.base_url, "--find-max-rate"]) == 2
    assert "--slo-p99-e2e-ms" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["proxy", "jobs"])
def test_bench_through_the_proxy_or_the_job_api_reports_its_batches(live_server, capsys, mode):
    code = main(
        [
            "bench",
            "--base-url",
            live_server.base_url,
            "--mode",
            mode,
            "--num-prompts",
            "16",
            "--output-len",
            "4",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert (
        code == 0
        and f"{mode} batches:" in out
        and "failed                                 0" in out
    )


def test_bench_against_a_server_that_dies_mid_run_reports_errors_and_exits_cleanly(capsys):
    """The server stops itself when its tenth completion arrives; later requests find nobody."""
    app = create_app(time_scale=0.01)
    seen = 0

    async def dying(scope, receive, send):  # the app, plus a trigger on its tenth completion
        nonlocal seen
        if scope["type"] == "http" and scope["path"] == "/v1/completions":
            seen += 1
            if seen == 10:
                threading.Thread(target=server.stop).start()
        await app(scope, receive, send)

    server = ServerThread(dying)
    with server:
        code = main(
            [
                "bench",
                "--base-url",
                server.base_url,
                "--num-prompts",
                "40",
                "--request-rate",
                "200",
                "--output-len",
                "4",
                "--no-progress",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    failed = int(out.split("failed")[1].split()[0])
    assert 0 < failed < 40 and "error ServerUnavailableError" in out, out
