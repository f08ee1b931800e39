"""Imports point one way: each folder of the import package may import only the folders below it.

Every import counts, function-level ones included (a lazy import is still an arrow). The layers, bottom up, one
folder each (docs/architecture.md#layers):

    kubeline/core/       contracts: errors, settings, schema, storage, stored versions, registry, profiles
    kubeline/cluster/    Kubernetes, the KFP API, the upstream CRDs, images, pod runtime
    kubeline/serving/    the model server, the KServe rollout, local endpoints, smoke tests and replays
    katib/               kubeline.katib: the Katib Experiment builder, its rules, the cluster runner, local tuner
    kubeline/operate/    canary analysis, rollback, alerting, the alert webhook
    components/          kubeline.components.<name>: never another component
    pipelines/           kubeline.pipelines
    kubeline/cli/        the CLI, the local runner, its display, local monitoring: may import everything

``kubeline`` itself (the package version) may be imported from anywhere and imports nothing.
"""
import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BELOW = {  # folder -> the folders it may import besides itself
    "kubeline.core": [],
    "kubeline.cluster": ["kubeline.core"],
    "kubeline.serving": ["kubeline.core", "kubeline.cluster"],
    "kubeline.katib": ["kubeline.core", "kubeline.cluster"],
    "kubeline.operate": ["kubeline.core", "kubeline.cluster", "kubeline.serving"],
    "kubeline.components": ["kubeline.core", "kubeline.cluster", "kubeline.serving", "kubeline.katib",
                            "kubeline.operate"],
    "kubeline.pipelines": ["kubeline.core", "kubeline.cluster", "kubeline.serving", "kubeline.katib",
                           "kubeline.operate", "kubeline.components"],
    "kubeline.cli": ["kubeline.core", "kubeline.cluster", "kubeline.serving", "kubeline.katib", "kubeline.operate",
                     "kubeline.components", "kubeline.pipelines"],
}


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


def folder(module: str) -> str:
    """The layer folder a module sits in: ``kubeline`` for the package itself, "" for a module outside every one."""
    if module == "kubeline":
        return module
    return next((name for name in BELOW if module == name or module.startswith(f"{name}.")), "")


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
            here, there = folder(source), folder(target)
            if there in ("kubeline", here) or there in BELOW.get(here, ()):
                if (here == there == "kubeline.components" and component_of(source) and component_of(target)
                        and component_of(source) != component_of(target)):
                    problems.append(f"{source} imports another component's {target}")
                continue
            problems.append(f"{source} ({here or 'no layer'}) imports {target} ({there}), which is not below it")
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


def test_every_module_sits_in_a_layer_folder_and_every_folder_is_a_layer():
    edges = graph()
    assert [m for m in edges if not folder(m)] == []
    assert {folder(m) for m in edges} == {"kubeline", *BELOW}
    subpackages = {f"kubeline.{p.parent.name}" for p in (REPO_ROOT / "kubeline").glob("*/__init__.py")}
    assert subpackages == {name for name in BELOW if package_dirs().get(name) is None}
    assert "kubeline.cli.local_run" in edges["kubeline.cli.main"]  # imported inside a function


def test_every_import_points_down():
    assert wrong_arrows(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


@pytest.mark.parametrize("edges, expected", [
    ({"kubeline.core.registry": {"kubeline.components.push.core"}},
     ["kubeline.core.registry (kubeline.core) imports kubeline.components.push.core (kubeline.components), "
      "which is not below it"]),
    ({"kubeline.serving.metrics": {"kubeline.operate.alerting"}},
     ["kubeline.serving.metrics (kubeline.serving) imports kubeline.operate.alerting (kubeline.operate), "
      "which is not below it"]),
    ({"kubeline.katib.experiment": {"kubeline.serving.server"}},
     ["kubeline.katib.experiment (kubeline.katib) imports kubeline.serving.server (kubeline.serving), "
      "which is not below it"]),
    ({"kubeline.operate.rollback": {"kubeline.cli.local_run"}},
     ["kubeline.operate.rollback (kubeline.operate) imports kubeline.cli.local_run (kubeline.cli), "
      "which is not below it"]),
    ({"kubeline.components.train.core": {"kubeline.components.transform.core"}},
     ["kubeline.components.train.core imports another component's kubeline.components.transform.core"]),
    ({"kubeline.stray": {"kubeline.core.errors"}},
     ["kubeline.stray (no layer) imports kubeline.core.errors (kubeline.core), which is not below it"]),
    ({"kubeline.components.tune.core": {"kubeline.katib.experiment", "kubeline.core.errors", "kubeline"},
      "kubeline.cli.monitor": {"kubeline.components.drift.core", "kubeline.pipelines.training"},
      "kubeline.components.model_card.config": {"kubeline.components.model_card.core"}}, []),
])
def test_the_checks_catch_what_they_should(edges, expected):
    assert wrong_arrows(edges) == expected


def test_cycle_check_finds_a_cycle_through_a_lazy_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
