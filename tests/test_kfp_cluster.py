"""The cluster-shaped runner itself (tests/kfp_cluster.py, tests/kfp_pod.py) on small compiled pipelines: it must
refuse what KFP's backend refuses and keep the pods as apart as a cluster does, or the cluster-shaped run of the
training pipeline proves nothing."""
import os

import pytest
from kfp import compiler, dsl, kubernetes
from kfp_cluster import Cluster, PipelineFailed, PipelineRun

IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def leave_traces(marker: str, run_id: str) -> str:
    import json
    import os
    from pathlib import Path

    Path("/tmp/kfp/trace").write_text(marker)
    Path("/minio/trace").write_text(marker)
    return json.dumps({"home": os.environ["HOME"], "tmpdir": os.environ["TMPDIR"], "cwd": os.getcwd(),
                       "run_id": run_id, "keys": sorted(os.environ)})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def look_for_traces(upstream: str, secret_value: str = "unset") -> str:
    import json
    import os
    from pathlib import Path

    return json.dumps({"seen": [p for p in ("/tmp/kfp/trace", "/minio/trace") if Path(p).exists()],
                       "home": os.environ["HOME"], "secret": os.environ.get("FROM_SECRET", secret_value),
                       "config": os.environ.get("FROM_CONFIG", "unset")})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def not_a_number() -> float:
    return float("nan")


@dsl.pipeline(name="traces")
def traces(secret_name: str = "present", marker: str = "here"):
    first = leave_traces(marker=marker, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    second = look_for_traces(upstream=first.output)
    kubernetes.use_secret_as_env(second, secret_name=secret_name, secret_key_to_env={"key": "FROM_SECRET"},
                                 optional=False)
    kubernetes.use_config_map_as_env(second, config_map_name="absent", config_map_key_to_env={"k": "FROM_CONFIG"},
                                     optional=True)
    with dsl.If(marker == "nan"):
        not_a_number()


@pytest.fixture
def cluster(tmp_path, s3):
    s3.create_bucket(Bucket=f"runner-{tmp_path.name[-20:].lower().replace('_', '-')}")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    launcher = {"minio_endpoint": endpoint, "s3_endpoint": endpoint, "region": "us-east-1",
                "access_key": "kubeline-tests", "secret_key": "kubeline-tests", "gcs_endpoint": ""}
    return Cluster(tmp_path / "pods", f"minio://runner-{tmp_path.name[-20:].lower().replace('_', '-')}/root",
                   launcher, {}, "{}", "http://127.0.0.1:1", secrets={"present": {"key": "s3cr3t"}})


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = tmp_path_factory.mktemp("package") / "traces.yaml"
    compiler.Compiler().compile(traces, str(path))
    return path


def test_pods_share_no_files_and_get_only_what_kubernetes_gives_them(cluster, package):
    import json

    os.environ["KUBELINE_TEST_HOST_ONLY"] = "1"  # a variable of this machine that no pod may see
    try:
        result = PipelineRun(cluster, package, {}).run()
    finally:
        del os.environ["KUBELINE_TEST_HOST_ONLY"]
    first = json.loads(result.tasks["leave-traces"].parameters["Output"])
    second = json.loads(result.tasks["look-for-traces"].parameters["Output"])
    assert second["seen"] == []  # /tmp/kfp and /minio are each pod's own
    assert len({first["home"], second["home"]}) == 2 and first["tmpdir"] != first["home"]
    assert first["run_id"] == result.run_id  # a whole-placeholder runtime constant is resolved (resolve.go)
    assert "KUBELINE_TEST_HOST_ONLY" not in first["keys"] and "KUBERNETES_SERVICE_HOST" in first["keys"]
    assert second["secret"] == "s3cr3t" and second["config"] == "unset"  # optional ConfigMap absent: no variable
    assert result.tasks["condition-1"].state == "SKIPPED"


def test_a_missing_required_secret_stops_the_pod(cluster, package):
    with pytest.raises(PipelineFailed, match='Secret "gone" .* not found: the pod cannot start'):
        PipelineRun(cluster, package, {"secret_name": "gone"}).run()


def test_a_nan_output_is_refused_as_protojson_refuses_it(cluster, package):
    with pytest.raises(PipelineFailed, match="NaN is not JSON: the launcher's protojson.Unmarshal refuses it"):
        PipelineRun(cluster, package, {"marker": "nan"}).run()
