"""The lab autograder: grades solutions/ by default; `make check-lab` grades your labs/.

    make check-lab                     # every lesson of your labs/
    make check-lab LESSON=08           # one lesson (its `lesson` marker), nothing else
    .venv/bin/python -m pytest tests/lab                               # the worked solutions
    INFERLAB_CHECK=labs .venv/bin/python -m pytest tests/lab --lesson 05

What it does beyond plain pytest, so that a learner reads a short, kind report:
1. each lesson's module is loaded when one of its checks first needs it, so a syntax error in
   one lesson fails that lesson only ("labs/exercises_02.py does not load: ...");
2. an exercise still raising its TODO's NotImplementedError is one line, "not started:
   exercises_02.is_retryable", listed once however many checks need it;
3. any other failure is the check's own paragraph (which guarantee, what was observed, where to
   look), and an exception from your code shows only the lines of your own file.

INFERLAB_CHECK may also be one or more folders (os.pathsep between them): the mutation test
(tests/test_lab_mutants.py) grades every wrong answer in one run, and INFERLAB_GRADE_REPORT
names a JSON file that receives each check's outcome and message.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import pytest

from tests.lab.grading import (
    LabModuleBroken,
    describe_exception,
    graded_folders,
    not_started,
    shown,
)

LAB_FOLDERS = ("solutions", "labs")
CHECK_TIMEOUT_S = 20  # every check takes well under a second on a correct answer
LESSONS = ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10")


def module_of_lesson(lesson: str) -> str:
    return "queue_proxy" if lesson == "05" else f"exercises_{lesson}"


_loaded: dict[Path, ModuleType | LabModuleBroken] = {}


def load_lab_module(folder: Path, name: str) -> ModuleType:
    """Import folder/name.py on first use; a module that cannot load fails only its own checks."""
    path = folder / f"{name}.py"
    if path not in _loaded:
        spec = importlib.util.spec_from_file_location(f"graded_{abs(hash(folder))}_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            _loaded[path] = module
        except Exception as exc:  # a learner's module may raise anything while loading
            where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
            cause = (
                f"{type(exc).__name__}{where}: {exc.msg if isinstance(exc, SyntaxError) else exc}"
            )
            _loaded[path] = LabModuleBroken(f"{shown(path)} does not load: {cause}")
    result = _loaded[path]
    if isinstance(result, LabModuleBroken):
        raise result
    return result


# --- selection: an explicit lesson marker, never a substring of test ids -----------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lesson", action="append", default=[], help="grade only this lesson (00-10); repeatable"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lesson(number): the lesson ('00'-'10') a check grades")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    folders = graded_folders()
    if "lab_dir" in metafunc.fixturenames and len(folders) > 1:
        metafunc.parametrize("lab_dir", folders, ids=[folder.name for folder in folders])


def lesson_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("lesson")
    if marker is None or marker.args[0] not in LESSONS:
        raise pytest.UsageError(f"{item.nodeid} needs a @pytest.mark.lesson('NN') marker")
    return str(marker.args[0])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = [lesson.zfill(2) for lesson in config.getoption("--lesson", default=[]) or []]
    unknown = [lesson for lesson in wanted if lesson not in LESSONS]
    if unknown:
        raise pytest.UsageError(f"--lesson {unknown[0]}: there are lessons 00 to 10")
    keep, drop = [], []
    for item in items:
        if not item.nodeid.startswith("tests/lab/"):
            keep.append(item)
            continue
        lesson = lesson_of(item)
        item.add_marker(pytest.mark.timeout(CHECK_TIMEOUT_S))  # an endless loop fails, briefly
        callspec = getattr(item, "callspec", None)
        folder = callspec.params.get("lab_dir") if callspec else None
        if folder is None and os.environ.get("INFERLAB_CHECK", "solutions") not in LAB_FOLDERS:
            folder = graded_folders()[0]  # one folder of one's own, not labs/ or solutions/
        # a mutant's folder holds only the module it changes, and may name the one check it
        # targets (in grade_only.txt): grade that alone
        absent = folder is not None and not (folder / f"{module_of_lesson(lesson)}.py").exists()
        only = folder / "grade_only.txt" if folder is not None else None
        other = only is not None and only.exists() and item.originalname != only.read_text().strip()
        (drop if (wanted and lesson not in wanted) or absent or other else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def lab_dir() -> Path:
    return graded_folders()[0]


@pytest.fixture
def lab(lab_dir: Path):
    """lab("exercises_02") -> that module from the folder being graded, loaded on first use."""
    return lambda name: load_lab_module(lab_dir, name)


# --- reporting: one paragraph per failure, one line per unstarted exercise --------------------
def _guarantee(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else item.name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.excinfo is None or report.passed or not item.nodeid.startswith("tests/lab/"):
        return report
    exc = call.excinfo.value
    todo = not_started(exc)
    if isinstance(exc, LabModuleBroken):
        report.grade_kind, report.longrepr = "does not load", str(exc)
    elif todo is not None:
        report.grade_kind, report.longrepr = "not started", f"not started: {todo}"
    elif isinstance(exc, pytest.fail.Exception) and str(exc.msg).startswith("Timeout (>"):
        report.grade_kind = "failed"
        where = describe_exception(exc).split("\n", 1)[1]
        report.longrepr = (
            f"{_guarantee(item)}\n  Observed: still running after {CHECK_TIMEOUT_S} s: "
            f"an endless loop? It was here:\n{where}"
        )
    elif isinstance(exc, pytest.fail.Exception):
        report.grade_kind, report.longrepr = "failed", str(exc.msg)
    elif isinstance(exc, AssertionError):  # a check written as a bare assert: its message only
        report.grade_kind = "failed"
        report.longrepr = f"{_guarantee(item)}\n{str(exc).split(chr(10) + 'assert ')[0]}"
    else:
        report.grade_kind = "failed"
        report.longrepr = f"{_guarantee(item)}\n{describe_exception(exc)}"
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    kind = getattr(report, "grade_kind", None)
    if report.failed and kind == "not started":
        return "not started", "n", "NOT STARTED"
    if report.failed and kind == "does not load":
        return "does not load", "L", "DOES NOT LOAD"
    return None


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for kind in ("does not load", "not started"):
        lines = dict.fromkeys(
            str(report.longrepr) for report in terminalreporter.stats.get(kind, [])
        )
        if lines:
            terminalreporter.write_sep("-", kind)
            for line in lines:
                terminalreporter.write_line(line)
    report_path = os.environ.get("INFERLAB_GRADE_REPORT")
    if report_path:
        outcomes = [
            {
                "nodeid": report.nodeid,
                "when": report.when,
                "outcome": getattr(report, "grade_kind", report.outcome),
                "message": "" if report.passed else str(report.longrepr),
            }
            for reports in terminalreporter.stats.values()
            for report in reports
            if isinstance(report, pytest.TestReport) and (report.when == "call" or report.failed)
        ]
        Path(report_path).write_text(json.dumps(outcomes, indent=1))
