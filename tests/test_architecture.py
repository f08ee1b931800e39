"""Imports point one way: contracts (kubeline/) at the bottom, then katib/, components, pipelines, CLI on top.

Every import counts, function-level ones included (a lazy import is still an arrow). Layers, bottom up:

    contracts   kubeline.*  (errors, schema, storage, model store, saved model, training, artifacts, registry,
                kube, images, serving) except the top modules
    katib       kubeline.katib.*              imports contracts
    components  kubeline.components.<name>.*  imports contracts and katib, never another component
    pipelines   kubeline.pipelines.*          imports components
    top         kubeline.cli, kubeline.local_run, kubeline.monitor
"""
import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["contracts", "katib", "components", "pipelines", "top"]
TOP = {"kubeline.cli", "kubeline.local_run", "kubeline.monitor"}


def package_dirs() -> dict[str, str]:
    """setup.py's package_dir mapping, read from its source (import package -> folder)."""
    source = (REPO_ROOT / "setup.py").read_text()
    block = re.search(r"PACKAGE_DIRS = \{(.*?)\}", source, re.S).group(1)
    return dict(re.findall(r'"([\w.]+)": "([\w/]+)"', block))


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in package_dirs().items():
        for path in (REPO_ROOT / folder).rglob("*.py"):
            relative = path.relative_to(REPO_ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, anywhere in it."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
    return targets


def layer(module: str) -> str:
    if module in TOP:
        return "top"
    for prefix, name in (("kubeline.katib", "katib"), ("kubeline.components", "components"),
                         ("kubeline.pipelines", "pipelines")):
        if module == prefix or module.startswith(f"{prefix}."):
            return name
    return "contracts"


def component_of(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else ""


def graph() -> dict[str, set[str]]:
    found = modules()
    return {module: imports_of(path, set(found)) - {module} for module, path in found.items()}


def wrong_arrows(edges: dict[str, set[str]]) -> list[str]:
    problems = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            if LAYERS.index(layer(target)) > LAYERS.index(layer(source)):
                problems.append(f"{source} ({layer(source)}) imports {target} ({layer(target)})")
            elif (layer(source) == layer(target) == "components" and component_of(source)
                  and component_of(target) and component_of(source) != component_of(target)):
                problems.append(f"{source} imports another component's {target}")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_the_walk_sees_every_layer_and_function_level_imports():
    edges = graph()
    assert {layer(m) for m in edges} == set(LAYERS)
    assert "kubeline.local_run" in edges["kubeline.cli"]  # imported inside a function


def test_every_import_points_down():
    assert wrong_arrows(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


@pytest.mark.parametrize("edges, expected", [
    ({"kubeline.registry": {"kubeline.components.push.core"}},
     ["kubeline.registry (contracts) imports kubeline.components.push.core (components)"]),
    ({"kubeline.katib.experiment": {"kubeline.components.train.core"}},
     ["kubeline.katib.experiment (katib) imports kubeline.components.train.core (components)"]),
    ({"kubeline.components.train.core": {"kubeline.components.transform.core"}},
     ["kubeline.components.train.core imports another component's kubeline.components.transform.core"]),
    ({"kubeline.components.tune.core": {"kubeline.katib.experiment", "kubeline.errors"}}, []),
])
def test_the_checks_catch_what_they_should(edges, expected):
    assert wrong_arrows(edges) == expected


def test_cycle_check_finds_a_cycle_through_a_lazy_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
