"""The images users build (`make images`, `.ci/images`): two tags per image, the tags kubeline/cluster/images.py names,
base images pinned by digest through the Dockerfiles' ARGs, a non-root user in every image.

There is no docker engine here: the plan is read from `make images DRY_RUN=1`, and a copy of the script runs in a
scratch repository against a fake docker that records what it is asked to do."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lock import locked_versions

from kubeline.cluster import images

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = ["components/Dockerfile", "kserve/Dockerfile"]
DIGEST = "sha256:" + "0123456789abcdef" * 4
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def make_plan(target: str, *variables: str) -> list[list[str]]:
    result = subprocess.run(["make", "-s", target, "DRY_RUN=1", f"PYTHON={sys.executable}", *variables], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, part in enumerate(command) if part == flag]


def builds(commands: list[list[str]]) -> list[list[str]]:
    return [command for command in commands if command[:3] == ["docker", "buildx", "build"]]


def dockerfile(text: str) -> tuple[dict[str, str], list[tuple[str, str | None, list[str]]]]:
    """The ARG defaults declared before the first FROM, and each stage as (base, name, its instructions)."""
    arguments, stages = {}, []
    for line in text.splitlines():
        if match := re.match(r"FROM (\S+)(?: AS (\S+))?$", line):
            stages.append((match[1], match[2], []))
        elif stages:
            stages[-1][2].append(line)
        elif match := re.match(r"ARG (\w+)=(\S+)$", line):
            arguments[match[1]] = match[2]
    return arguments, stages


def test_every_image_gets_the_release_tag_images_py_names_and_a_commit_tag():
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    built = builds(make_plan("images"))
    releases = {images.DATA, images.TF, images.TF_GPU, images.SERVING}
    assert {tuple(option(command, "-t")) for command in built} == \
        {(release, f"{release.rpartition(':')[0]}:{commit[:12]}") for release in releases}
    assert all(option(command, "--build-arg") == [f"GIT_COMMIT={commit}"] for command in built)


def test_push_builds_then_pushes_both_tags_under_the_registry():
    commands = make_plan("push-images", "REGISTRY=registry.example.test/team")
    built = builds(commands)
    assert commands[:len(built)] == built and len(built) == 4
    pushed = [command[2] for command in commands[len(built):] if command[:2] == ["docker", "push"]]
    assert pushed == [tag for command in built for tag in option(command, "-t")]
    assert all(re.fullmatch(r"registry\.example\.test/team/kubeline-[\w-]+:[\w.]+", tag) for tag in pushed)


def test_every_base_image_goes_through_a_pinned_argument():
    """Every FROM names an earlier stage, a digest, or a *_IMAGE argument (which `make pin-images` pins and
    `make images` refuses unpinned); the Python and Beam versions are the locked ones."""
    bases = {}
    for path in DOCKERFILES:
        arguments, stages = dockerfile((REPO / path).read_text())
        for index, (base, _, _) in enumerate(stages):
            earlier = {name for _, name, _ in stages[:index]}
            argument = re.fullmatch(r"\$\{(\w+_IMAGE)\}", base)
            assert base in earlier or re.search(r"@sha256:[0-9a-f]{64}$", base) or \
                (argument and argument[1] in arguments), f"{path}: FROM {base} is neither pinned nor a *_IMAGE ARG"
            if argument:
                bases.setdefault(argument[1], set()).add(arguments[argument[1]].split("@")[0])
    assert bases == {"PYTHON_IMAGE": {f"python:{PYTHON}-slim"},
                     "BEAM_IMAGE": {f"apache/beam_python{PYTHON}_sdk:{locked_versions()['apache-beam']}"}}


def test_every_image_runs_as_a_non_root_user():
    for command in builds(make_plan("images")):
        _, stages = dockerfile((REPO / option(command, "-f")[0]).read_text())
        target = option(command, "--target")
        (_, _, instructions), = [stage for stage in stages if stage[1] in target] if target else stages[-1:]
        users = [line.split()[1] for line in instructions if line.startswith("USER ")]
        assert users and users[-1] not in ("0", "root"), f"{option(command, '-t')[0]} runs as {users[-1:] or 'root'}"


@pytest.fixture
def scratch(tmp_path):
    """A copy of what .ci/images reads, committed in a scratch repository, and a fake docker on PATH."""
    repo = tmp_path / "repo"
    for path in [".gitignore", ".ci/images", "kubeline/__init__.py", "kubeline/cluster/images.py", *DOCKERFILES]:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, repo / path)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.test", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "scratch"], cwd=repo, check=True)
    calls = tmp_path / "calls.jsonl"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                    f"if sys.argv[1:3] == ['buildx', 'imagetools']:\n"
                    f"    print(json.dumps({{'mediaType': 'application/vnd.oci.image.index.v1+json', "
                    f"'digest': {DIGEST!r}, 'size': 1}}))\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}

    def run(*args: str) -> subprocess.CompletedProcess:
        calls.unlink(missing_ok=True)
        result = subprocess.run([sys.executable, str(repo / ".ci" / "images"), *args], cwd=repo, env=env,
                                capture_output=True, text=True, timeout=60)
        result.calls = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
        return result

    return repo, git, run


def test_a_build_is_refused_until_pin_images_pins_every_base_then_runs_its_plan(scratch):
    repo, _, run = scratch
    refused = run("build")
    assert refused.returncode == 2 and "make pin-images" in refused.stderr and refused.calls == []

    pinned = run("pin")
    assert pinned.returncode == 0, pinned.stderr
    assert {call[-1] for call in pinned.calls} == {f"python:{PYTHON}-slim",
                                                   f"apache/beam_python{PYTHON}_sdk:{locked_versions()['apache-beam']}"}
    for path in DOCKERFILES:
        arguments, _ = dockerfile((repo / path).read_text())
        assert arguments and all(value.endswith(f"@{DIGEST}") for value in arguments.values()), arguments
    assert run("pin").returncode == 0 and (repo / DOCKERFILES[0]).read_text().count(DIGEST) == 2  # re-pinning

    plan = run("build", "--dry-run")
    assert plan.stderr == ""
    built = run("build")
    assert built.returncode == 0, built.stderr
    assert built.calls == [shlex.split(line)[1:] for line in plan.stdout.splitlines()]


def test_push_is_refused_from_a_tree_with_changes(scratch):
    repo, git, run = scratch
    assert run("pin").returncode == 0
    refused = run("push")
    assert refused.returncode == 2 and "working tree has changes" in refused.stderr and refused.calls == []
    subprocess.run([*git, "commit", "-qam", "pin"], cwd=repo, check=True)
    pushed = run("push", "--registry", "registry.example.test/team")
    assert pushed.returncode == 0, pushed.stderr
    assert [call[:1] for call in pushed.calls] == [["buildx"]] * 4 + [["push"]] * 8
