"""The set-up files agree with each other, and the public API is exactly what we export."""

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
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


_PACKAGES = ["inferlab"] + [f"inferlab.{name}" for name in inferlab.SUBPACKAGES]
_PLUMBING = {"annotations", "TYPE_CHECKING", "lazy_exports"}  # how a package is built


@pytest.mark.parametrize("package_name", _PACKAGES)
def test_public_names_are_exactly_all(package_name):
    """Every public name of each package is in its __all__, and every name in __all__
    resolves, whether the package imports it at once or on first use."""
    package = importlib.import_module(package_name)
    defined = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    lazy = set(getattr(package, "_WHERE", {}))
    reachable = set(inferlab.SUBPACKAGES) if package is inferlab else set()  # not exported
    actual = (defined | lazy) - _PLUMBING - reachable
    assert actual | {"__version__"} == set(package.__all__) | {"__version__"}
    for name in package.__all__:
        assert getattr(package, name) is not None


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_import_inferlab_loads_no_framework():
    """`import inferlab` is quick because it loads no web framework, HTTP client or plotting
    library; they load when a name that needs them is first used."""
    loaded = _modules_loaded_by("import inferlab")
    assert not loaded & {"fastapi", "uvicorn", "httpx", "matplotlib", "ipywidgets"}


def test_the_job_client_loads_none_of_the_server_side():
    loaded = _modules_loaded_by("from inferlab.jobs.client import AsyncJobClient")
    assert "httpx" in loaded
    assert not loaded & {"fastapi", "uvicorn", "inferlab.serve", "inferlab.jobs.app"}


def test_the_calibration_data_ships_with_the_package():
    data = ROOT / "src" / "inferlab" / "data" / "h100_calibration.json"
    assert data.exists() and "llama3.1-8b" in data.read_text()
