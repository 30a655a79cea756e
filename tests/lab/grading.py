"""What the lab checks share: where the graded files are, and how a failure is told."""

from __future__ import annotations

import os
import re
import sys
import traceback
from pathlib import Path
from types import TracebackType

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


class LabModuleBroken(Exception):
    """A lab module that raises while being imported (a syntax error, a bad import)."""


def graded_folders() -> list[Path]:
    setting = os.environ.get("INFERLAB_CHECK", "solutions")
    if setting in {"solutions", "labs"}:
        return [ROOT / setting]
    folders = [Path(part).resolve() for part in setting.split(os.pathsep) if part]
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if not folders or missing:
        raise pytest.UsageError(
            f"INFERLAB_CHECK must be 'solutions', 'labs' or existing folders, got {setting!r}"
        )
    return folders


def shown(path: str | Path) -> str:
    """A path as the learner knows it: labs/exercises_02.py."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def in_graded_file(filename: str) -> bool:
    path = Path(filename).resolve()
    return any(path.is_relative_to(folder) for folder in graded_folders())


def learner_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    """The frames of a traceback that are in the graded files: the learner's own lines."""
    return [frame for frame in traceback.extract_tb(tb) if in_graded_file(frame.filename)]


def not_started(exc: BaseException) -> str | None:
    """'exercises_02.is_retryable' if exc (or what caused it) is a TODO's NotImplementedError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NotImplementedError):
            frames = [
                (frame, lineno)
                for frame, lineno in traceback.walk_tb(exc.__traceback__)
                if in_graded_file(frame.f_code.co_filename)
            ]
            if not frames:
                return None
            frame = frames[-1][0]
            name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
            return f"{Path(frame.f_code.co_filename).stem}.{name}"
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def describe_exception(exc: BaseException) -> str:
    """'Your code raised KeyError: 3' and the learner's lines it came through."""
    lines = [f"Your code raised {type(exc).__name__}: {exc}"]
    for frame in learner_frames(exc.__traceback__)[-3:]:
        lines.append(f"  {shown(frame.filename)}, line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line}")
    if len(lines) == 1:
        lines.append(
            "  (not from a line of your file: check what your function is given and returns)"
        )
    return "\n".join(lines)


def broke(guarantee: str, observed: str, look: str) -> None:
    """Fail a check with one paragraph: which guarantee broke, what was seen, where to look."""
    pytest.fail(f"{guarantee}\n  Observed: {observed}\n  Look at: {look}", pytrace=False)


def close_to(got: object, expected: float, rel: float) -> bool:
    """True if got is a number within rel (relative) of expected."""
    return (
        isinstance(got, (int, float))
        and not isinstance(got, bool)
        and got == pytest.approx(expected, rel=rel, abs=1e-12)
    )


def _matches(got: object, expected: object, rel: float) -> bool:
    if isinstance(expected, float | int) and not isinstance(expected, bool):
        return close_to(got, expected, rel)
    if isinstance(expected, tuple | list):
        return (
            isinstance(got, tuple | list)
            and len(got) == len(expected)
            and all(_matches(g, e, rel) for g, e in zip(got, expected, strict=True))
        )
    return got == expected


def _has_float(value: object) -> bool:
    if isinstance(value, tuple | list):
        return any(map(_has_float, value))
    return isinstance(value, float)


def expect(got: object, expected: object, *, given: str, look: str, rel: float = 1e-9) -> None:
    """Fail the calling check unless got is expected (numbers within rel, relative).

    Its first docstring line is the guarantee the failure names."""
    caller = sys._getframe(1)
    function = caller.f_globals.get(caller.f_code.co_name)
    doc = (getattr(function, "__doc__", None) or caller.f_code.co_name).strip().splitlines()[0]
    if not _matches(got, expected, rel):
        tolerance = f" (within {rel:g} relative)" if _has_float(expected) else ""
        broke(doc, f"{given}: expected {expected!r}{tolerance}, got {got!r}.", look)


# --- free-text answers: a choice, and a reason that names the ideas that make it right ---------
def _mentions(text: str, words: tuple[str, ...]) -> bool:
    """True if lowercase text has one of words (or phrases) at the start of a word: 'weight'
    finds 'Weights' but not 'overweight'; one that starts with a sign ('/s') is found anywhere."""
    return any(
        re.search((r"(?<![a-z0-9])" if word[:1].isalnum() else "") + re.escape(word.lower()), text)
        for word in words
    )


def explained(
    answer: object,
    *,
    choices: tuple[object, ...],
    expected: object,
    ideas: dict[str, tuple[str, ...]],
    given: str,
) -> None:
    """Fail the calling check unless answer is (the expected choice, a reason naming every idea).

    A reason is read kindly: each idea is a short description and the words that would show
    it, any one of them enough ('weight', 'memory', 'bandwidth' for "what a decode step reads").
    The failure says which ideas the reason does not mention yet, never what the sentence must
    be: a learner who has the idea can always find words of their own for it."""
    caller = sys._getframe(1)
    function = caller.f_globals.get(caller.f_code.co_name)
    doc = (getattr(function, "__doc__", None) or caller.f_code.co_name).strip().splitlines()[0]
    if not (isinstance(answer, tuple | list) and len(answer) == 2):
        broke(doc, f"{given}: expected (choice, reason), got {answer!r}.", "return two things")
    choice, reason = answer
    if isinstance(choice, str):  # kindly: "In the client " is the choice "in the client"
        choice = next((c for c in choices if str(c).lower() == choice.strip().lower()), choice)
    if choice not in choices:
        options = ", ".join(map(repr, choices))
        broke(doc, f"{given}: your choice {choice!r} is not one of {options}.", "the docstring")
    if choice != expected:
        broke(
            doc,
            f"{given}: you chose {choice!r}; the measurements say otherwise.",
            "what the notebook's cell printed, and which of the choices it shows",
        )
    text = reason.lower() if isinstance(reason, str) else ""
    if len(text.split()) < 5:
        broke(doc, f"{given}: the right choice, but {reason!r} is not a reason yet.", "say why")
    missing = [idea for idea, words in ideas.items() if not _mentions(text, words)]
    if missing:
        said = [f"it does not yet say {idea}" for idea in missing]
        quoted = reason if len(reason) <= 100 else reason[:97] + "..."
        broke(
            doc,
            f"{given}: the right choice, {expected!r}; your reason: {quoted!r}, but "
            + "; ".join(said)
            + ".",
            "the lesson's explanation of what you measured; say it in your own words",
        )
