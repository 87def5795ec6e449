"""The distribution's shape: namespaced imports, package data, and dependency lists that agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    conda_names = {CONDA_TO_PYPI.get(_name(d), _name(d)) for d in conda} - {"python", "pip"}
    assert conda_names == {_name(d) for d in project["dependencies"]}
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section
    python = next(d for d in conda if _name(d) == "python")
    assert python.replace("python", "") == project["requires-python"]


def test_analysis_imports_no_ui_packages():
    """analysis/ is computation only: importing it must not pull ipywidgets, plotly or Jupyter."""
    code = (
        "import sys, embgeo.analysis, embgeo.analysis.io, embgeo.analysis.datasets;"
        "bad = [m for m in ('ipywidgets', 'plotly', 'IPython', 'jupyter_client', 'voila') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT.parent)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_regular_install_is_namespaced_and_carries_package_data(tmp_path):
    """A built wheel installs embgeo.analysis / embgeo.widgets and no bare top-level package."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = wheels.glob("embgeo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"embgeo"}
    for expected in ("embgeo/analysis/__init__.py", "embgeo/widgets/__init__.py", "embgeo/analysis/static/report.css"):
        assert expected in names
    assert any(n.startswith("embgeo/analysis/data/") and n.endswith(".npz") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import embgeo.analysis as a, embgeo.widgets;"
        "print(a.__file__);"
        "import importlib.util as u; assert u.find_spec('analysis') is None and u.find_spec('widgets') is None"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target))
