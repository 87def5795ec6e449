"""The layering rule of ARCHITECTURE.md, enforced on the source tree (and shown to catch violations).

Every import in ``analysis/``, ``widgets/`` and ``embgeo/`` is read with ``ast`` (those inside functions
too: a lazy import is still a dependency) and resolved to a module name. The rules:

1. ``embgeo.analysis`` never imports ``embgeo.widgets``, the ``embgeo`` command line, or a UI package.
   The one exception is plotly, for the charts of the standalone HTML report page (``report/html.py``).
2. Inside ``analysis`` a module imports only from sub-packages of a lower layer (or its own), and from
   another sub-package only the names its ``__init__`` exports: never one of its modules, never a
   name starting with ``_``.
3. ``widgets/`` and ``embgeo/`` import only the public surface: ``embgeo.analysis`` and its public
   modules ``io``, ``datasets`` and ``embed``, and no names starting with ``_``. ``embgeo/`` does not
   import the widgets either.
4. Modules stay under :data:`MAX_MODULE_LINES` lines.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The import layers of embgeo.analysis, lowest first. A module may import from a lower layer or from
#: its own sub-package; sub-packages on one layer are siblings and may not import each other.
LAYERS = {
    "_core": 0,
    "neighbors": 1,
    "embeddings": 2, "distributed": 2,
    "io": 3, "datasets": 3, "embed": 3, "transforms": 3,
    "geometry": 4, "index": 4,
    "report": 5, "layers": 5,
    "comparison": 6, "shift": 6,
}
#: What ``widgets/`` and ``embgeo/`` may import from the analysis package.
PUBLIC_MODULES = {"embgeo.analysis", "embgeo.analysis.io", "embgeo.analysis.datasets", "embgeo.analysis.embed"}
#: Packages that draw or serve a UI; analysis imports none of them (plotly: see ALLOWED_UI).
UI_PACKAGES = {"ipywidgets", "anywidget", "traitlets", "plotly", "voila", "jupyterlab", "jupyter_server",
               "IPython", "ipykernel", "notebook"}
#: The one place analysis may use a UI package, and which.
ALLOWED_UI = {("report", "html.py"): {"plotly"}}
MAX_MODULE_LINES = 500


def _module_name(path: Path, root: Path, package: str) -> tuple[str, bool]:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join([package, *parts]), is_package


def _imports(source: str, module: str, is_package: bool):
    """(line, imported module, imported name or None) for every import statement in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                yield node.lineno, target, alias.name


def _analysis_part(module: str) -> str | None:
    """The analysis sub-package (or top module) a module belongs to; None for embgeo.analysis itself."""
    parts = module.split(".")
    if parts[:2] != ["embgeo", "analysis"] or len(parts) == 2:
        return None
    return parts[2]


def _exports(pkg_init: Path) -> set[str]:
    """Names an analysis sub-package's ``__init__`` imports (its internal API)."""
    tree = ast.parse(pkg_init.read_text())
    return {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}


def check_tree(repo: Path) -> list[str]:
    """Every violation of the rules in the module docstring under ``repo``, as readable lines."""
    problems = []
    sources = [("analysis", "embgeo.analysis"), ("widgets", "embgeo.widgets"), ("embgeo", "embgeo")]
    for folder, package in sources:
        root = repo / folder
        for path in sorted(root.rglob("*.py")):
            module, is_package = _module_name(path, root, package)
            where = f"{path.relative_to(repo)}"
            text = path.read_text()
            if folder in ("analysis", "widgets") and text.count("\n") > MAX_MODULE_LINES:
                problems.append(f"{where}: {text.count(chr(10))} lines, over {MAX_MODULE_LINES}")
            for line, target, name in _imports(text, module, is_package):
                top = target.split(".")[0]
                at = f"{where}:{line}: imports {target}" + (f".{name}" if name else "")
                if folder == "analysis":
                    problems += _check_analysis_import(repo, path, module, target, name, top, at)
                elif target.startswith("embgeo.analysis") or (target == "embgeo" and name == "analysis"):
                    if target not in PUBLIC_MODULES or (name and name.startswith("_")):
                        problems.append(f"{at}: {folder}/ may import only public embgeo.analysis names")
                elif folder == "embgeo" and target.startswith("embgeo.widgets"):
                    problems.append(f"{at}: the command line does not import the widgets")
    return problems


def _check_analysis_import(repo, path, module, target, name, top, at) -> list[str]:
    if target.startswith("embgeo.widgets") or target in ("embgeo.cli", "embgeo.__main__") \
            or target.startswith("embgeo._commands"):
        return [f"{at}: analysis never imports the widgets or the command line"]
    if top in UI_PACKAGES:
        rel = path.relative_to(repo / "analysis").parts
        if top not in ALLOWED_UI.get(tuple(rel[-2:]), set()):
            return [f"{at}: analysis never imports UI packages"]
        return []
    if not target.startswith("embgeo.analysis"):
        return []
    src, dst = _analysis_part(module), _analysis_part(target)
    if dst is None:  # embgeo.analysis itself: only its own __init__ is above everything
        if src is not None and name not in (None,) and (target == "embgeo.analysis"):
            sub = name if name in LAYERS else None
            if sub is None:
                return [f"{at}: a sub-package imports from the top-level package (upward)"]
            dst = sub
        else:
            return []
    if src is None or src == dst:
        return []
    if dst not in LAYERS:
        return [f"{at}: unknown analysis part {dst!r} (add it to LAYERS and ARCHITECTURE.md)"]
    if src not in LAYERS:
        return [f"{at}: unknown analysis part {src!r} (add it to LAYERS and ARCHITECTURE.md)"]
    if LAYERS[dst] >= LAYERS[src]:
        kind = "sibling" if LAYERS[dst] == LAYERS[src] else "upward"
        return [f"{at}: {kind} import ({src}, layer {LAYERS[src]}, from {dst}, layer {LAYERS[dst]})"]
    problems = []
    pkg_init = repo / "analysis" / dst / "__init__.py"
    if pkg_init.exists():  # a sub-package: only through its __init__, only what it exports
        if target != f"embgeo.analysis.{dst}":
            problems.append(f"{at}: reaches into {dst}'s module {target}; import from embgeo.analysis.{dst}")
        elif name is not None and name not in _exports(pkg_init):
            problems.append(f"{at}: {name!r} is not exported by embgeo.analysis.{dst}")
    if name and name.startswith("_") and not (name == "_core" and target == "embgeo.analysis"):
        problems.append(f"{at}: private name {name!r} imported across sub-packages")
    return problems


def test_the_tree_follows_the_layering_rule():
    problems = check_tree(REPO)
    assert not problems, "\n".join(problems)


def test_every_analysis_part_is_a_known_layer():
    parts = {p.name for p in (REPO / "analysis").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts |= {p.stem for p in (REPO / "analysis").glob("*.py") if p.stem != "__init__"}
    assert parts == set(LAYERS)


# --------------------------------------------------------------------------------------------- the test's test


def _fake_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    """A tree shaped like the repository's, with the given files (and empty package inits)."""
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for folder in ("analysis", "widgets", "embgeo"):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "__init__.py").touch()
    for part in LAYERS:
        if part not in ("datasets", "embed"):
            init = tmp_path / "analysis" / part / "__init__.py"
            init.parent.mkdir(parents=True, exist_ok=True)
            if not init.exists():
                init.write_text("from .things import Thing\n")
    return tmp_path


@pytest.mark.parametrize("files, expected", [
    ({"analysis/_core/rows.py": "from ..geometry import Thing\n"}, "upward import (_core, layer 0, from geometry"),
    ({"analysis/io/tables.py": "from ..transforms import Thing\n"}, "sibling import (io, layer 3, from transforms"),
    ({"analysis/geometry/hubness.py": "def f():\n    from ..report import Thing\n"}, "upward import"),
    ({"analysis/report/full.py": "from ..geometry.isotropy import Thing\n"}, "reaches into geometry's module"),
    ({"analysis/report/full.py": "from ..geometry import _private\n"}, "is not exported"),
    ({"analysis/geometry/x.py": "import ipywidgets\n"}, "never imports UI packages"),
    ({"analysis/geometry/x.py": "from embgeo.widgets import Dashboard\n"}, "never imports the widgets"),
    ({"widgets/panel.py": "from embgeo.analysis.geometry.isotropy import isotropy_report\n"},
     "may import only public embgeo.analysis names"),
    ({"widgets/panel.py": "from embgeo.analysis import _core\n"}, "may import only public embgeo.analysis names"),
    ({"embgeo/cli.py": "from embgeo.widgets import Dashboard\n"}, "does not import the widgets"),
    ({"analysis/geometry/big.py": "x = 1\n" * (MAX_MODULE_LINES + 1)}, f"over {MAX_MODULE_LINES}"),
])
def test_the_checker_catches_each_kind_of_violation(tmp_path, files, expected):
    problems = check_tree(_fake_repo(tmp_path, files))
    assert any(expected in p for p in problems), problems


def test_the_checker_accepts_downward_imports_through_the_package(tmp_path):
    files = {"analysis/report/full.py": "from ..geometry import Thing\nfrom .._core import Thing\n",
             "analysis/report/html.py": "def page():\n    import plotly\n",
             "widgets/panel.py": "from embgeo.analysis import geometry_report\nfrom embgeo.analysis.io import load\n"}
    assert check_tree(_fake_repo(tmp_path, files)) == []
