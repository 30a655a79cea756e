from inferlab.cli import build_parser, main


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
