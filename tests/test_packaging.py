"""The set-up files agree with each other, and the public API is exactly what we export."""

import sys
from pathlib import Path
from types import ModuleType

import yaml

import inferlab

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_lists_exactly_what_pyproject_lists():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in ("notebooks", "dev"):
        wanted |= set(project["optional-dependencies"][extra])
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(
        item["pip"] for item in environment["dependencies"] if isinstance(item, dict)
    )
    listed = {line for line in pip_section if not line.startswith("-e")}
    assert listed == wanted
    assert f"python{project['requires-python']}" in environment["dependencies"]


def test_public_names_are_exactly_all():
    """Every public name is in __all__ and every name in __all__ exists (submodules aside)."""
    public = {
        name
        for name, value in vars(inferlab).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public | {"__version__"} == set(inferlab.__all__)


def test_the_calibration_data_ships_with_the_package():
    data = ROOT / "src" / "inferlab" / "data" / "h100_calibration.json"
    assert data.exists() and "llama3.1-8b" in data.read_text()
