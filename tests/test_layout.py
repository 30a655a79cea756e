"""The package is laid out along the data flow, and nothing imports against it.

    engine → serve → wire → batching → proxy, jobs → load → lab → cli

A module may import from its own subpackage, from any subpackage to its left, and from the
two leaves every layer shares (`inferlab.errors`, `inferlab._lazy`). proxy and jobs stand side
by side: neither imports the other. The check reads the source (the AST), so it also catches
imports that only run inside a function or under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

import inferlab

PACKAGE_ROOT = Path(inferlab.__file__).parent
# proxy and jobs share a rank: both sit on batching, and neither may use the other.
RANK = {
    "engine": 0,
    "serve": 1,
    "wire": 2,
    "batching": 3,
    "proxy": 4,
    "jobs": 4,
    "load": 5,
    "lab": 6,
    "cli": 7,
}
SHARED_LEAVES = {"errors", "_lazy"}


def _imported_top_names(module: Path, root: Path) -> list[tuple[int, str]]:
    """(line, first part of the inferlab module imported) for every inferlab import."""
    package_parts = list(module.relative_to(root).parent.parts)
    found = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = package_parts[: len(package_parts) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
                if not node.module and not target:  # from . import x, at the top level
                    target = [node.names[0].name]
            elif node.module and node.module.split(".")[0] == "inferlab":
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.append((node.lineno, target[0]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "inferlab" and len(parts) > 1:
                    found.append((node.lineno, parts[1]))
    return found


def violations(root: Path) -> list[str]:
    """Every import in the tree under `root` that goes against the flow, said plainly."""
    problems = []
    for module in sorted(root.rglob("*.py")):
        parts = module.relative_to(root).parts
        if len(parts) < 2 or parts[0] not in RANK:
            continue  # the top-level facade and the shared leaves
        own = parts[0]
        for line, target in _imported_top_names(module, root):
            if target == own or target in SHARED_LEAVES:
                continue
            if target not in RANK:
                problems.append(f"{module.relative_to(root)}:{line} imports unknown {target!r}")
            elif RANK[target] >= RANK[own]:
                problems.append(
                    f"{module.relative_to(root)}:{line}: {own} imports {target}, which is not "
                    "to its left in the flow"
                )
    return problems


def test_every_subpackage_is_ranked():
    on_disk = {p.name for p in PACKAGE_ROOT.iterdir() if (p / "__init__.py").exists()}
    assert on_disk == set(RANK) == set(inferlab.SUBPACKAGES)


def test_nothing_imports_against_the_flow():
    assert violations(PACKAGE_ROOT) == []


def test_the_check_catches_an_import_against_the_flow(tmp_path):
    """The check itself can fail: an engine module importing the server is reported, and so
    are proxy and jobs importing each other."""
    for name in ("engine", "serve", "proxy", "jobs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "engine" / "model.py").write_text("from ..serve.app import create_app\n")
    (tmp_path / "proxy" / "app.py").write_text("from inferlab.jobs import JobService\n")
    (tmp_path / "serve" / "app.py").write_text(
        "from ..engine import model\nfrom .. import errors\n"
    )
    found = violations(tmp_path)
    assert len(found) == 2
    assert found[0].startswith("engine/model.py:1: engine imports serve")
    assert found[1].startswith("proxy/app.py:1: proxy imports jobs")


def test_every_subpackage_says_what_it_is_and_what_it_may_import():
    for name in RANK:
        doc = ast.get_docstring(ast.parse((PACKAGE_ROOT / name / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"{name}/__init__.py needs its docstring"
