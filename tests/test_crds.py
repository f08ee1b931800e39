"""`make crds` (.ci/crds): the upstream schemas by URL and sha256, into a clone that has no ../shared beside it.

A copy of the script runs in a scratch repository; its downloads go to a mirror of GitHub's raw files served on
127.0.0.1 (KUBELINE_CRDS_MIRROR), laid out as raw.githubusercontent.com lays them out (owner/repo/tag/path).
"""
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from crds import CRDS

REPO = Path(__file__).resolve().parents[1]


def load_script() -> dict:
    """The script's FILES table (path under .crds/ -> (upstream path, sha256)), read by running its source."""
    namespace = {"__name__": "crds_script", "__file__": str(REPO / ".ci" / "crds")}
    exec(compile((REPO / ".ci" / "crds").read_text(), "crds", "exec"), namespace)
    return namespace["FILES"]


@pytest.fixture
def mirror(tmp_path):
    """GitHub's raw files for every pinned path, served on 127.0.0.1; yields (its URL, its root folder)."""
    root = tmp_path / "mirror"
    for relative, (upstream, _) in load_script().items():
        (root / upstream).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CRDS / relative, root / upstream)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *args: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def run_in_a_clone(tmp_path, **env) -> tuple[subprocess.CompletedProcess, Path]:
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / ".ci" / "crds", clone / ".ci" / "crds")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KUBELINE_CRDS")}
    result = subprocess.run([sys.executable, str(clone / ".ci" / "crds")], capture_output=True, text=True,
                            timeout=120, env={**environment, **env})
    return result, clone / ".crds"


def test_the_pinned_files_are_the_ones_the_tests_use():
    """Every file the tests read has its pin, and the folder the tests read matches every digest."""
    import hashlib

    files = load_script()
    assert {str(p.relative_to(CRDS)) for p in CRDS.rglob("*") if p.is_file() and p.name != "SOURCES.md"} \
        >= set(files)
    assert all(hashlib.sha256((CRDS / relative).read_bytes()).hexdigest() == digest
               for relative, (_, digest) in files.items())
    assert all(upstream.split("/")[2] in ("v0.20.0", "v0.19.0", "v0.93.0") for upstream, _ in files.values())


def test_a_clone_without_shared_downloads_them_checked_and_a_tampered_one_is_refused(tmp_path, mirror):
    url, root = mirror
    result, placed = run_in_a_clone(tmp_path, KUBELINE_CRDS_MIRROR=url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "upstream schemas in .crds/: 18 files, 18 placed now from GitHub"
    assert sorted(str(p.relative_to(placed)) for p in placed.rglob("*") if p.is_file()) == sorted(load_script())
    assert run_in_a_clone(tmp_path, KUBELINE_CRDS_MIRROR=url)[0].stdout.strip().endswith("0 placed now")

    upstream = "kserve/kserve/v0.20.0/config/crd/full/serving.kserve.io_inferenceservices.yaml"
    (root / upstream).write_text((root / upstream).read_text().replace("type: integer", "type: string", 1))
    (placed / "kserve" / "serving.kserve.io_inferenceservices.yaml").unlink()
    result, _ = run_in_a_clone(tmp_path, KUBELINE_CRDS_MIRROR=url)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"make crds: {upstream} has sha256 ") and "run `make crds` where" in result.stderr
    assert not (placed / "kserve" / "serving.kserve.io_inferenceservices.yaml").exists()


def test_no_network_and_no_copy_fails_in_one_line_saying_what_to_do(tmp_path):
    result, placed = run_in_a_clone(tmp_path, KUBELINE_CRDS_MIRROR="http://127.0.0.1:9")  # the discard port
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("make crds: cannot read kserve/kserve/v0.20.0/config/crd/full/")
    assert "set KUBELINE_CRDS_SOURCE to a folder holding the files" in result.stderr
    assert not placed.exists() or not any(placed.rglob("*.yaml"))


def test_the_tests_without_the_schemas_stop_in_one_line_naming_make_crds(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "tests" /
                             "test_katib.py")], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "KUBELINE_CRDS_DIR": str(tmp_path / "none")})
    assert result.returncode != 0
    assert f"the upstream schemas are not in {tmp_path / 'none'}: run `make crds`" in result.stdout + result.stderr
    assert "skipped" not in result.stdout
