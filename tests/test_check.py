"""`kubeline check`, the CI command for users' pipelines: it passes on this repository, and fails, with a report
naming what and where, on a stale or missing YAML and on what KFP's backend would do differently."""
import shutil
import subprocess
import sys
import textwrap

from kubeline.cli import main as cli
from kubeline.pipelines import PIPELINES
from kubeline.pipelines.compile import COMPILED_DIR

USER_PIPELINES = textwrap.dedent('''\
    from kfp import dsl


    @dsl.component(base_image="python:3.11-slim")
    def greet(name: str, run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER) -> str:
        return f"hello {name} from {run_id}"


    @dsl.pipeline(name="greeting")
    def greeting(name: str = "world"):
        greet(name=name)
''')


def run_check(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kubeline.cli.main", "check", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_this_repositorys_pipelines_pass(capsys):
    assert cli.main(["check"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"ok   {name}" for name in sorted(PIPELINES)]


def test_a_stale_or_missing_yaml_fails_naming_the_difference(tmp_path, capsys):
    committed = tmp_path / "compiled"
    shutil.copytree(COMPILED_DIR, committed)
    path = committed / "training_pipeline.yaml"
    path.write_text(path.read_text().replace("defaultValue: 42.0", "defaultValue: 43.0", 1))
    assert cli.main(["check", "--compiled-dir", str(committed)]) == 1
    out = capsys.readouterr().out
    assert "FAIL training_pipeline.yaml" in out and "stale: components.comp-ingest.inputDefinitions.parameters.seed." \
                                                     "defaultValue: committed 43.0, compiled now 42.0" in out
    assert "kubeline compile" in out
    path.unlink()
    assert cli.main(["check", "--compiled-dir", str(committed)]) == 1
    assert "not compiled:" in capsys.readouterr().out


def test_a_users_pipeline_is_found_compiled_and_held_to_the_backend(tmp_path):
    (tmp_path / "user_pipelines.py").write_text(USER_PIPELINES)
    compiled = tmp_path / "compiled"
    env_cwd = str(tmp_path)
    made = subprocess.run([sys.executable, "-m", "kubeline.cli.main", "compile", "user_pipelines", "--out-dir",
                           str(compiled)], capture_output=True, text=True, cwd=env_cwd, timeout=120)
    assert made.returncode == 0, made.stderr
    assert (compiled / "greeting.yaml").is_file()
    result = run_check("user_pipelines", "--compiled-dir", str(compiled), cwd=env_cwd)
    assert result.returncode == 1, result.stdout
    # The run id as a component default reaches the component as literal text on a cluster (resolve.go).
    assert "backend: components.comp-greet.inputDefinitions.parameters.run_id.defaultValue: " \
           "'{{$.pipeline_job_uuid}}' reaches the component as literal text" in result.stdout
    missing = run_check("no_such_module", cwd=env_cwd)
    assert missing.returncode == 2 and "MODULE: cannot import 'no_such_module'" in missing.stderr


def test_the_objects_the_steps_would_create_validate_against_the_upstream_schemas(tmp_path, capsys):
    """With --crds, the tune step's Experiment and the deploy step's InferenceService, built from the pipeline's
    defaults by the steps' own builders, are validated against Katib's and KServe's schemas; a schema that
    disagrees (here a copy whose maxTrialCount must be text) fails the check naming the step and the field."""
    import json

    from crds import CRDS, require

    from kubeline.pipelines.check import emitted_objects

    require(CRDS / "katib" / "openapi-swagger.json")

    kinds = {task: emitted["kind"] for task, emitted in emitted_objects(PIPELINES["training_pipeline.yaml"])}
    assert kinds == {"tune": "Experiment", "deploy": "InferenceService"}
    assert cli.main(["check", "--crds", str(CRDS)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"ok   {name}" for name in sorted(PIPELINES)]

    strict = tmp_path / "crds"
    shutil.copytree(CRDS, strict)
    openapi = strict / "katib" / "openapi-swagger.json"
    document = json.loads(openapi.read_text())
    document["components"]["schemas"]["v1beta1.ExperimentSpec"]["properties"]["maxTrialCount"]["type"] = "string"
    openapi.chmod(0o644)
    openapi.write_text(json.dumps(document))
    assert cli.main(["check", "--crds", str(strict)]) == 1
    out = capsys.readouterr().out
    assert "schema: tune's Experiment spec.maxTrialCount: 8 is not of type 'string'" in out


def test_a_crds_folder_without_the_schemas_is_refused(tmp_path, capsys):
    assert cli.main(["check", "--crds", str(tmp_path)]) == 2
    assert f"--crds: {tmp_path}/katib/openapi-swagger.json is missing" in capsys.readouterr().err


SUB_DAG_POD_SPEC = textwrap.dedent('''\
    from kfp import dsl


    @dsl.component(base_image="python:3.11-slim")
    def work(n: int) -> int:
        return n


    @dsl.pipeline(name="subdag-cpu")
    def subdag_cpu(flag: str = "a", cpu: str = "1"):
        with dsl.If(flag == "a"):
            work(n=1).set_cpu_request(cpu)
''')


def test_a_pod_spec_parameter_inside_a_sub_dag_is_reported_not_crashed_on(tmp_path):
    """kfp's compiler leaves the parameter out of the dsl.If sub-DAG's inputs; KFP's driver then fails the task
    (backend/src/v2/driver/resolve.go: "parent DAG does not have input parameter")."""
    (tmp_path / "sub_dag_pipelines.py").write_text(SUB_DAG_POD_SPEC)
    compiled = tmp_path / "compiled"
    made = subprocess.run([sys.executable, "-m", "kubeline.cli.main", "compile", "sub_dag_pipelines", "--out-dir",
                           str(compiled)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert made.returncode == 0, made.stderr
    result = run_check("sub_dag_pipelines", "--compiled-dir", str(compiled), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "stale" not in result.stdout and "Traceback" not in result.stderr
    assert ("backend: task work: container.resources.resourceCpuRequest reads pipelinechannel--cpu, which its DAG "
            "does not pass" in result.stdout)
