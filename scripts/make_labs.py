#!/usr/bin/env python3
"""Make labs/ from solutions/: the learner's copy is the solution with the answers taken out.

    python scripts/make_labs.py           # write labs/
    python scripts/make_labs.py --check   # exit 1 if labs/ is not what solutions/ makes

In .py files and code cells, a block between `# BEGIN SOLUTION (hint)` and `# END SOLUTION`
becomes a TODO that raises NotImplementedError with the hint. In markdown cells, text between
`<!-- BEGIN ANSWER -->` and `<!-- END ANSWER -->` becomes a prompt to answer, and lines ending
in `<!-- solution only -->` are dropped. Lab notebooks are written without outputs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS, LABS = ROOT / "solutions", ROOT / "labs"

_CODE_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)# BEGIN SOLUTION \((?P<hint>[^\n]*)\)[ \t]*\n.*?^[ \t]*# END SOLUTION\n",
    re.MULTILINE | re.DOTALL,
)
_ANSWER = re.compile(r"<!-- BEGIN ANSWER -->.*?<!-- END ANSWER -->", re.DOTALL)
_SOLUTION_ONLY = re.compile(r"^.*<!-- solution only -->\n?", re.MULTILINE)


def strip_code(source: str, filename: str) -> str:
    def todo(match: re.Match[str]) -> str:
        indent, hint = match["indent"], match["hint"]
        message = f"TODO in {filename}: {hint}"
        return (
            f"{indent}# TODO: {hint}\n"
            f"{indent}raise NotImplementedError(\n{indent}    {message!r}\n{indent})\n"
        )

    stripped = _CODE_BLOCK.sub(todo, source)
    if "BEGIN SOLUTION" in stripped or "END SOLUTION" in stripped:  # a marker the pattern missed
        raise ValueError(f"{filename}: a BEGIN/END SOLUTION marker is malformed or unpaired")
    return stripped


def strip_markdown(source: str) -> str:
    source = _SOLUTION_ONLY.sub("", source)
    return _ANSWER.sub("*Your answer here: measure first, then write what you saw.*", source)


def lab_notebook(solution: dict, filename: str) -> dict:
    cells = []
    for cell in solution["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code":
            text = strip_code(text if text.endswith("\n") else text + "\n", filename).rstrip("\n")
            cell = {**cell, "source": text, "outputs": [], "execution_count": None}
        elif cell["cell_type"] == "markdown":
            cell = {**cell, "source": strip_markdown(text)}
        cells.append(cell)
    return {**solution, "cells": cells}


def expected_labs() -> dict[Path, str]:
    """Every lab file and the text it must have."""
    labs: dict[Path, str] = {}
    for path in sorted(SOLUTIONS.iterdir()):
        if path.suffix == ".py":
            labs[LABS / path.name] = strip_code(path.read_text(), f"labs/{path.name}")
        elif path.name.endswith("_solution.ipynb"):
            name = path.name.replace("_solution.ipynb", "_lab.ipynb")
            notebook = lab_notebook(json.loads(path.read_text()), f"labs/{name}")
            labs[LABS / name] = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    return labs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    drifted = []
    for path, text in expected_labs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                drifted.append(path.relative_to(ROOT))
        else:
            path.write_text(text)
    if drifted:
        print("labs/ has drifted from solutions/; run `python scripts/make_labs.py`:")
        print("\n".join(f"  {path}" for path in drifted))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
