"""The autograder rejects every plausible wrong answer in tests/lab/mutants.py, and says why.

One grader run covers them all: each mutant is a folder holding the one module it changes, graded
beside solutions/, which must pass every check. For each mutant, the check it targets must fail
with the message meant for it (other checks may fail too: a bug can break more than one promise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.mutants import ALL, Mutant

ROOT = Path(__file__).resolve().parent.parent


def write_mutant(mutant: Mutant, folder: Path) -> None:
    source = (ROOT / "solutions" / f"{mutant.module}.py").read_text()
    assert source.count(mutant.old) == 1, f"{mutant.name}: its snippet is not in the solution once"
    folder.mkdir()
    (folder / f"{mutant.module}.py").write_text(source.replace(mutant.old, mutant.new))
    (folder / "grade_only.txt").write_text(mutant.check)  # the grader skips its other checks


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict]]]:
    """{folder name: {check name: [its outcomes]}} from one grader run over every mutant."""
    base = tmp_path_factory.mktemp("mutants")
    for mutant in ALL:
        write_mutant(mutant, base / mutant.name)
    folders = [ROOT / "solutions", *(base / mutant.name for mutant in ALL)]
    report = base / "report.json"
    environment = {
        **os.environ,
        "INFERLAB_CHECK": os.pathsep.join(map(str, folders)),
        "INFERLAB_GRADE_REPORT": str(report),
    }
    subprocess.run(
        [sys.executable, "-m", "pytest", "tests/lab", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        timeout=600,  # a guard against a hang, not a speed check: a busy laptop needs minutes
    )
    names = {folder.name for folder in folders}
    by_folder: dict[str, dict[str, list[dict]]] = {}
    for outcome in json.loads(report.read_text()):
        check, params = outcome["nodeid"].split("::")[1].rstrip("]").split("[")
        (folder,) = names.intersection(params.split("-"))
        by_folder.setdefault(folder, {}).setdefault(check, []).append(outcome)
    return by_folder


def test_the_solutions_pass_every_check(graded):
    outcomes = [outcome for runs in graded["solutions"].values() for outcome in runs]
    assert len(graded["solutions"]) >= 30, sorted(graded["solutions"])  # every check ran
    assert all(outcome["outcome"] == "passed" for outcome in outcomes), outcomes


@pytest.mark.parametrize("mutant", ALL, ids=[mutant.name for mutant in ALL])
def test_each_mutant_fails_its_check_with_its_message(graded, mutant: Mutant):
    outcomes = graded[mutant.name]
    targeted = outcomes.get(mutant.check)
    assert targeted, f"{mutant.check} did not run on {mutant.name}: {sorted(outcomes)}"
    messages = [o["message"] for o in targeted if o["outcome"] == "failed"]
    assert messages, f"{mutant.name} passed {mutant.check}"
    assert any(mutant.message in message for message in messages), messages
    for message in messages:
        assert "Traceback" not in message and "site-packages" not in message, message
        assert len(message.splitlines()) <= 12, message
