"""The labs are the solutions with the answers taken out, and the autograder can tell them apart."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def grade(folder: str | Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "INFERLAB_CHECK": str(folder)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/lab", "-q", "-p", "no:cacheprovider", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_labs_are_generated_from_the_solutions():
    result = subprocess.run(
        [sys.executable, "scripts/make_labs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_untouched_labs_get_one_not_started_line_per_exercise():
    result = grade("labs")
    assert result.returncode == 1, result.stdout[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].split(" in ")[0].endswith("not started"), lines[-1]  # nothing else
    listed = [line for line in lines if line.startswith("not started: ")]
    assert "not started: exercises_02.is_retryable" in listed
    assert "not started: queue_proxy.QueueProxy.complete" in listed
    assert len(listed) == len(set(listed)) and len(lines) <= len(listed) + 4, result.stdout
    assert "Traceback" not in result.stdout and "asyncio" not in result.stdout


def test_one_lessons_broken_module_fails_that_lesson_only(tmp_path):
    for path in (ROOT / "solutions").glob("*.py"):
        shutil.copy(path, tmp_path)
    broken = tmp_path / "exercises_02.py"
    broken.write_text(broken.read_text().replace("def is_retryable(", "def is_retryable(("))
    result = grade(tmp_path, "--lesson", "02", "--lesson", "03")
    lines = result.stdout.strip().splitlines()
    assert f"{broken} does not load: SyntaxError" in result.stdout, result.stdout
    summary = lines[-1]
    assert "passed" in summary and "does not load" in summary and "deselected" in summary
    assert "failed" not in summary, summary  # lesson 03 passes; 02 fails as one module


def test_lessons_are_chosen_by_marker_not_by_substring():
    """Lesson 00's checks include none of lesson 02's `[500-True]` or 04's ids."""
    result = grade("solutions", "--lesson", "00", "--collect-only")
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected and all("test_lesson_00.py::" in line for line in collected), collected


def test_a_free_text_answer_is_read_kindly():
    """explained() takes the choice in any case and a reason in any words that carry the ideas,
    and names the idea a reason misses."""
    from tests.lab.grading import explained

    def check(answer):
        """The checked answer."""
        explained(
            answer,
            choices=("in the client", "in the server"),
            expected="in the client",
            ideas={"what holds a thread": ("held", "busy"), "what it costs": ("throughput",)},
            given="where",
        )

    check((" In the Client", "Every thread was Busy with one request, so throughput fell."))
    with pytest.raises(pytest.fail.Exception, match="does not yet say what it costs"):
        check(("in the client", "Every thread was busy with one request at a time."))
    with pytest.raises(pytest.fail.Exception, match="not one of 'in the client'"):
        check(("client", "Every thread was busy with one request, so throughput fell."))
