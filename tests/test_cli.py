import json
import threading

import pytest

from inferlab import ServerThread, create_app
from inferlab.cli.main import build_parser, main


def test_doctor_passes_against_a_healthy_server(live_server, capsys):
    assert main(["doctor", "--base-url", live_server.base_url]) == 0
    out = capsys.readouterr().out
    assert "list of prompts" in out and "0 failed" in out


def test_doctor_reports_a_dead_server_without_crashing(capsys):
    assert main(["doctor", "--base-url", "http://127.0.0.1:9/v1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  GET /models" in out and "ServerUnavailableError" in out


def test_serve_options_and_their_defaults():
    args = build_parser().parse_args(["serve", "--batching", "static", "--time-scale", "0.1"])
    assert (args.host, args.port, args.batching, args.time_scale) == (
        "127.0.0.1",
        8000,
        "static",
        0.1,
    )
    assert args.profile == "h100-llama3-8b" and args.api_key is None


def test_proxy_options_and_their_defaults():
    args = build_parser().parse_args(["proxy", "--upstream", "http://127.0.0.1:8080/v1"])
    assert (args.port, args.max_batch_size, args.batch_wait_timeout_s) == (9000, 8, 0.01)
    assert args.no_list_prompts is False and args.host == "127.0.0.1"


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
    document = json.loads(saved.read_text())
    assert len(document["records"]) == 12 and document["summary"]["failed"] == 0


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
