"""The compiled pipelines obey what KFP's v2 driver and launcher do (pipelines/backend_rules.py names the
upstream code of each rule), and each rule catches what it is for."""
import copy

import pytest
import yaml

from kubeline.pipelines import PIPELINES
from kubeline.pipelines import backend_rules as rules
from kubeline.pipelines.compile import COMPILED_DIR


@pytest.fixture(scope="module")
def specs():
    return {name: next(yaml.safe_load_all((COMPILED_DIR / name).read_text())) for name in PIPELINES}


@pytest.mark.parametrize("file_name", sorted(PIPELINES))
def test_compiled_pipeline_obeys_the_backend(specs, file_name):
    assert rules.violations(specs[file_name]) == []


def test_a_placeholder_as_a_component_default_is_caught(specs):
    spec = copy.deepcopy(specs["training_pipeline.yaml"])
    spec["components"]["comp-track"]["inputDefinitions"]["parameters"]["kfp_run_id"]["defaultValue"] = \
        "{{$.pipeline_job_uuid}}"
    [problem] = rules.placeholders_left_unresolved(spec)
    assert problem.startswith("components.comp-track.inputDefinitions.parameters.kfp_run_id.defaultValue")


def test_a_placeholder_inside_a_longer_constant_is_caught_and_a_whole_one_is_not(specs):
    spec = copy.deepcopy(specs["training_pipeline.yaml"])
    tune = spec["root"]["dag"]["tasks"]["tune"]["inputs"]["parameters"]
    assert tune["kfp_run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    assert rules.placeholders_left_unresolved(spec) == []
    tune["kfp_run_id"] = {"runtimeValue": {"constant": "run-{{$.pipeline_job_uuid}}"}}
    assert [p.split(":")[0] for p in rules.placeholders_left_unresolved(spec)] == ["task tune input kfp_run_id"]


def test_a_number_feeding_a_pod_spec_field_is_caught(specs):
    spec = copy.deepcopy(specs["training_pipeline.yaml"])
    spec["root"]["inputDefinitions"]["parameters"]["accelerator_count"]["parameterType"] = "NUMBER_INTEGER"
    [problem] = rules.pod_spec_parameters_are_strings(spec)
    assert "resourceCount reads pipelinechannel--accelerator_count, a NUMBER_INTEGER" in problem


def test_strict_json_refuses_what_protojson_refuses():
    assert rules.strict_json('{"parameterValues": {"objective_value": -1.0}}') == {
        "parameterValues": {"objective_value": -1.0}}
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match="protojson"):
            rules.strict_json(f'{{"parameterValues": {{"objective_value": {constant}}}}}')
