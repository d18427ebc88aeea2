"""Packaging: the import stays light (no Qt, no napari), imports run one way down, and the manifest validates."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import napari_causal_lattice


def test_import_does_not_pull_qt_napari_or_the_numba_kernels():
    code = (
        "import sys, napari_causal_lattice\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'lingam', 'matplotlib', 'numba', 'llvmlite'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_manifest_validates():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-causal-lattice")
    assert manifest.name == "napari-causal-lattice"
    contributions = manifest.contributions
    assert {w.display_name for w in contributions.widgets} >= {
        "Atom columns",
        "Descriptors",
        "Causal discovery",
        "Sliding LiNGAM",
    }
    for command in contributions.commands:
        module, _, attr = command.python_name.partition(":")
        imported = __import__(module, fromlist=[attr])
        assert hasattr(imported, attr), f"{command.id} points to missing {command.python_name}"


def test_manifest_is_the_repo_copy():
    packaged = Path(napari_causal_lattice.__file__).with_name("napari.yaml").read_text()
    top = Path(__file__).resolve().parents[1] / "napari.yaml"
    if top.exists():
        assert packaged == top.read_text()


def test_version_is_exposed():
    assert napari_causal_lattice.__version__.count(".") >= 2


def test_npe2_validate_cli():
    pytest.importorskip("npe2")
    out = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-causal-lattice"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


# ------------------------------------------------------------------------------------------ imports one way down

PACKAGE = Path(napari_causal_lattice.__file__).resolve().parent
#: Modules in the order imports may run: each may import the earlier ones, never a later one.
LAYERS = ("readers", "store", "pipeline", "report", "batch", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at import time or lazily inside a function (a lazy import
    is still a dependency: a cycle through one only moves the failure to the first call)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # ``from .x import y`` imports the module x.y when there is one, else the name y of module x
                targets |= {f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle():
    graph = _import_graph()
    assert len(graph) > 30 and "napari_causal_lattice.causal.engine" in graph  # the whole package was read
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_readers_store_pipeline_report_batch_cli_import_one_way_down():
    graph = _import_graph()
    for k, name in enumerate(LAYERS):
        later = {f"napari_causal_lattice.{m}" for m in LAYERS[k + 1:]}
        assert not graph[f"napari_causal_lattice.{name}"] & later, f"{name} imports a later layer"
    assert graph["napari_causal_lattice.io"] == {"napari_causal_lattice.readers", "napari_causal_lattice.store"}


def test_every_public_name_resolves_and_io_keeps_its_names():
    from napari_causal_lattice import io, readers, store

    missing = [name for name in napari_causal_lattice.__all__ if not hasattr(napari_causal_lattice, name)]
    assert missing == []
    assert napari_causal_lattice.analyze_images.__module__ == "napari_causal_lattice.batch"
    # the former module re-exports every public name of both halves, as the same objects
    public = set()
    for module in (readers, store):
        for node in ast.parse(Path(module.__file__).read_text(encoding="utf-8")).body:
            names = [t.id for t in getattr(node, "targets", [])] or [getattr(node, "name", "_")]
            public |= {n for n in names if not n.startswith("_")}
    assert set(io.__all__) == public
    for name in io.__all__:
        assert getattr(io, name) is (getattr(readers, name, None) or getattr(store, name))
