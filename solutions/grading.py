"""Grade one lesson from its notebook: grade("04") runs the autograder on this folder only.

Only that lesson's checks run (chosen by their lesson marker, as `make check-lab LESSON=04`
does from the repository root), on the files beside this module: your labs/ in a lab, the
worked answers in a solution. It prints the grader's report: one line per exercise not
started, one paragraph per broken promise, and the count.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def grade(lesson: str) -> None:
    """Run lesson `lesson`'s checks on this folder's files and print what they say."""
    print(f"Grading lesson {lesson} only, on {HERE.name}/:")
    command = [sys.executable, "-m", "pytest", "tests/lab", "-q", "--no-header", "--color=no"]
    result = subprocess.run(
        [*command, "-p", "no:cacheprovider", "--lesson", lesson],
        cwd=HERE.parent,
        env={**os.environ, "INFERLAB_CHECK": HERE.name},
        capture_output=True,
        text=True,
    )
    print((result.stdout.strip() or result.stderr.strip()).replace("=" * 8, "-" * 8))
