"""The package's shape, read from the source with ast: imports point one way between subpackages, no module
imports itself back through others (no cycle, in diffusion/ nor in ui/), and configs are pure data."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Left to right, a subpackage may import from itself and from those on its left only.
LAYERS = ("core", "models", "config", "data", "sampling", "training", "metrics", "explore", "cli")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, wherever the import statement stands (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in modules and m != name}


def _graph(*packages: str) -> dict[str, set[str]]:
    modules = {k: v for p in packages for k, v in _modules(p).items()}
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                on.discard(w)
                component.append(w)
            on.discard(v)
            if component:
                out.append(sorted([v, *component]))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts == ["diffusion"]:
        return None                                   # the public face: __version__ and lazy re-exports
    return LAYERS.index("cli" if parts[1] == "__main__" else parts[1])


@pytest.mark.parametrize("packages", [("diffusion",), ("diffusion", "ui")])
def test_no_import_cycles(packages):
    assert _cycles(_graph(*packages)) == []


def test_a_detected_cycle_is_reported():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_point_one_way_between_subpackages():
    wrong = [f"{m} ({LAYERS[_layer(m)]}) imports {d} ({LAYERS[_layer(d)]})"
             for m, deps in _graph("diffusion").items() for d in deps
             if _layer(m) is not None and _layer(d) is not None and _layer(d) > _layer(m)]
    assert wrong == []


def test_configs_are_data_they_import_no_losses_nor_networks():
    data_only = {"diffusion.core.schedules", "diffusion.core.forward", "diffusion.core.flow_matching",  # no losses
                 "diffusion.models.model_config"}
    assert _graph("diffusion")["diffusion.config"] == data_only
    assert _graph("diffusion")["diffusion.models.model_config"] == set()


def test_the_ui_takes_no_defaults_from_the_cli():
    assert not [m for m, deps in _graph("diffusion", "ui").items() if m.startswith("ui") and "diffusion.cli" in deps]


# The Streamlit layer, top to bottom: page scripts, page families, shared views, jobs, then the diffusion package.
# A module may import from its own folder and from folders on lower floors only; families never import each other.
UI_FLOORS = {"app_pages": 0, "app": 0, "ui.toy2d": 1, "ui.images": 1, "ui.views": 2, "ui.jobs": 3, "ui": 4}
FAMILIES = ("ui.toy2d", "ui.images")


def _room(module: str) -> str:
    """The folder of a module of the Streamlit layer ("ui.toy2d", "app_pages", ...); "diffusion" for the package."""
    if module.startswith("diffusion"):
        return "diffusion"
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "ui" else parts[0]


def _floor(module: str) -> int:
    return len(UI_FLOORS) if _room(module) == "diffusion" else UI_FLOORS[_room(module)]


def _app_graph() -> dict[str, set[str]]:
    modules = {k: v for p in ("diffusion", "ui", "app_pages") for k, v in _modules(p).items()}
    modules["app"] = ROOT / "app.py"
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} imports {d}" for m, deps in graph.items() if not m.startswith("diffusion") for d in deps
            if _room(d) != _room(m) and (_floor(d) < _floor(m) or (_floor(d) == _floor(m) and _floor(m) > 0))]


def test_the_ui_is_folders_by_page_family_and_no_import_runs_back_up():
    graph = _app_graph()
    folders = {_room(m) for m in graph if m.startswith("ui.")}
    assert folders == {"ui.toy2d", "ui.images", "ui.views", "ui.jobs"}        # no module left loose in ui/
    assert _upward(graph) == []
    assert _cycles(graph) == []


def test_an_import_back_up_or_between_families_is_reported():
    graph = {"ui.jobs.timing": {"ui.views.charts"}, "ui.toy2d.flow2d": {"ui.images.image_cache"},
             "ui.views.charts": {"ui.jobs.timing", "diffusion.core.flow_matching"},
             "app_pages.toy2d": {"ui.toy2d.flow2d"}}
    assert _upward(graph) == ["ui.jobs.timing imports ui.views.charts", "ui.toy2d.flow2d imports ui.images.image_cache"]


def test_no_two_modules_share_a_basename():
    """A name says which room it is in: grep and tracebacks find one file (__init__.py and conftest.py excepted)."""
    seen: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0].startswith(".") or path.name in ("__init__.py", "conftest.py"):
            continue
        seen.setdefault(path.name, []).append(str(relative))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
