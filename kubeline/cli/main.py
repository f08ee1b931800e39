"""The ``kubeline`` command: run the pipeline locally, compile pipelines, submit and schedule them on Kubeflow
Pipelines, manage local endpoints."""
from __future__ import annotations

import argparse
import json
import sys

from kubeline.core.errors import InvalidInputError

EXIT_USER_ERROR = 2
EXIT_GATE_FAILED = 3
EXIT_RUN_FAILED = 1


def parse_set(items: list[str], option: str = "--set") -> dict:
    overrides = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise InvalidInputError(option, f"'{item}' is not NAME=VALUE", f"write e.g. {option} NAME=50")
        try:
            overrides[name] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[name] = raw
    return overrides


def cmd_run(args) -> int:
    if not args.local:
        raise InvalidInputError("--local", "only local runs are started from this command",
                                "add --local, or upload pipelines/compiled/training_pipeline.yaml in the Kubeflow "
                                "UI / submit it with kfp.Client (README: Run on a cluster)")
    if args.data and not args.label:
        raise InvalidInputError("--label", "--data needs the column to predict", "add --label COLUMN")
    from contextlib import redirect_stderr, redirect_stdout
    from pathlib import Path

    from rich.console import Console

    from kubeline.cli.local_run import render_summary, run_local
    from kubeline.cli.run_display import StepLogs

    logs = Path(args.output_dir) / "logs"
    for old in logs.glob("*.log"):
        old.unlink()
    console = Console(file=sys.stdout, highlight=False)  # the terminal, before kfp.local's output is redirected
    console.print(f"kubeline: running the training pipeline; each step's log goes to {logs}/<step>.log"
                  f"{'' if args.verbose else ' (--verbose shows them here)'}", soft_wrap=True)
    failure = None
    with StepLogs(logs, console, args.verbose) as steps, redirect_stdout(steps), redirect_stderr(steps):
        try:
            summary = run_local(args.output_dir, args.data or "", args.label or "", parse_set(args.set),
                                enable_caching=args.cache, model_root=args.model_root or "")
        except RuntimeError as err:
            failure = err
    if failure is not None:
        step = steps.failed_step()
        tail = "\n".join(f"    {line}" for line in steps.tail(step))
        print(f"\nkubeline: the pipeline failed: {failure}\nThe last lines of step '{step}':\n{tail}\n"
              f"Its whole log: {steps.log_path(step)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    print(render_summary(summary))
    return 0 if summary["gate"]["decision"] == "pass" else EXIT_GATE_FAILED


def selected_pipelines(modules: list[str]) -> dict | None:
    """The pipelines of the named modules (None: this package's own)."""
    from kubeline.pipelines.check import find_pipelines

    if not modules:
        return None
    found = {}
    for module in modules:
        found.update(find_pipelines(module))
    return found


def cmd_compile(args) -> int:
    from kubeline.pipelines.compile import COMPILED_DIR, compile_all

    for path in compile_all(args.out_dir or COMPILED_DIR, selected_pipelines(args.modules)):
        print(f"compiled {path}")
    return 0


def cmd_check(args) -> int:
    from kubeline.pipelines import PIPELINES
    from kubeline.pipelines.check import check, render
    from kubeline.pipelines.compile import COMPILED_DIR

    compiled_dir = args.compiled_dir or COMPILED_DIR
    report = check(selected_pipelines(args.modules) or PIPELINES, compiled_dir, args.crds)
    print(render(report, compiled_dir))
    return 1 if any(report.values()) else 0


def cmd_serve(args) -> int:
    from kubeline.serving import local
    from kubeline.serving.client import predict_url

    if args.action == "list":
        recorded = local.deployments()
        if not recorded:
            print(f"no local deployments (state in {local.home() / 'deployments'})")
        for state in recorded:
            canary = (f", canary version {state['canary']['version']} at {state['canary_percent']}%"
                      if state["canary"] else "")
            problems = local.check(state)
            verdict = "serving as recorded" if not problems else ("DOWN" if problems[0].startswith("down") else
                                                                  "SERVES SOMETHING ELSE")
            print(f"{state['name']}: {predict_url(state['url'], state['name'])}  stable version "
                  f"{state['stable']['version']} ({state['stable']['uri']}){canary}  pid {state['pid']}  {verdict}")
            for problem in problems:
                print(f"    {problem}")
        return 0
    if not args.name:
        raise InvalidInputError("NAME", "stop needs the deployment's name", "see `kubeline serve list`")
    if local.stop(args.name):
        print(f"stopped {args.name}")
        return 0
    print(f"kubeline: no local deployment named '{args.name}' is running", file=sys.stderr)
    return 1


def cmd_replay(args) -> int:
    from kubeline.serving import local, replay
    from kubeline.serving.client import request

    if args.endpoint.startswith(("http://", "https://")):
        if not args.model:
            raise InvalidInputError("--model", "a URL needs the model's name", "add --model NAME")
        url, model = args.endpoint.rstrip("/"), args.model
    else:
        state = local.get(args.endpoint)
        if state is None:
            raise InvalidInputError("ENDPOINT", f"no local deployment named '{args.endpoint}' is running",
                                    "see `kubeline serve list`, or give the server's URL and --model")
        url, model = state["url"], args.model or args.endpoint
    status, metadata = request("GET", f"{url}/v2/models/{model}")
    if status != 200:
        raise InvalidInputError("--model", f"{url} does not serve '{model}' (HTTP {status})", "name a model it serves")
    if args.data:
        data = args.data
    else:
        from kubeline.cli.local_run import penguins_csv

        data = str(penguins_csv())
    changes = {option: parse_set(getattr(args, option), f"--{option}") for option in ("shift", "replace")}
    rows = replay.read_rows(data, [i["name"] for i in metadata["inputs"]], **changes)
    result = replay.replay(url, model, rows, args.rate, args.duration, args.concurrency)
    print(result.summary())
    return 0 if set(result.statuses) == {200} else 1


def cmd_alerts(args) -> int:
    from kubeline.operate import alerting

    for path in alerting.write(alerting.load(args.config), args.out_dir):
        print(f"wrote {path}")
    return 0


def cmd_monitor(args) -> int:
    from kubeline.cli.monitor import monitor
    from kubeline.components.drift.config import DriftConfig
    from kubeline.components.retrain.config import RetrainConfig

    drift_config = DriftConfig(args.window, args.model, args.tracking_uri,
                               **given(args, "window_hours", "min_rows", "pushgateway_url", "endpoint_name"))
    retrain_config = RetrainConfig(args.model, args.tracking_uri, args.state, target="local" if args.local else "kfp",
                                   kfp_host=args.host or "", overrides=parse_set(args.set), dry_run=args.dry_run,
                                   **given(args, "cooldown_hours"))
    result, record, check_dir = monitor(drift_config, retrain_config)
    print(f"drift: {result.decision} ({result.rows} rows; report {check_dir / 'drift.html'})")
    for reason in result.reasons:
        print(f"  {reason}")
    if result.pushed_to:
        print(f"drift gauges: {result.pushed_to}")
    print(f"retrain: {record['action']}: {record['reason']}" + (f"\n  run: {record['run']}" if record["run"] else ""))
    return 0


def cmd_model_card(args) -> int:
    from kubeline.components.model_card import core as model_card

    card = model_card.create(model_card.model_uri_of(args.model), args.tracking_uri, owners=args.owner)
    folder = model_card.write(card, args.out_dir)
    print(f"{card.card['model_details']['overview']}\nwrote {folder / model_card.JSON_FILE}, "
          f"{model_card.MARKDOWN_FILE} and {model_card.HTML_FILE}")
    if args.attach and card.run_id:
        model_card.attach(folder, args.tracking_uri, card.run_id)
        print(f"attached to MLflow run {card.run_id} under {model_card.FOLDER}/")
    return 0


def cmd_rollback(args) -> int:
    from kubeline.core.errors import OperationFailedError
    from kubeline.operate.rollback import RollbackConfig, rollback

    config = RollbackConfig(args.endpoint, target=args.target, namespace=args.namespace or "",
                            from_version=args.from_version or "", model_name=args.model_name or "",
                            tracking_uri=args.tracking_uri or "", **given(args, "timeout_s"))
    try:
        rollback(config, kubeconfig=args.kubeconfig or "")
    except OperationFailedError as err:
        print(f"kubeline: {err}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0


def cmd_alert_webhook(args) -> int:
    from kubeline.operate.alert_webhook import Receiver, serve

    serve(Receiver(target=args.target, namespace=args.namespace or "", tracking_uri=args.tracking_uri or "",
                   model_name=args.model_name or "", kubeconfig=args.kubeconfig or "", **given(args, "timeout_s")),
          args.port)
    return 0


def rollback_options() -> argparse.ArgumentParser:
    """The options rollback and alert-webhook share: where the endpoint runs and which alias follows."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--target", choices=["local", "kubernetes"], default="local",
                         help="a local deployment (default) or a KServe InferenceService")
    options.add_argument("--namespace", help="the InferenceService's namespace (kubernetes; default: the kubeconfig's)")
    options.add_argument("--tracking-uri", help="MLflow registry URI: the alias champion follows the rollback")
    options.add_argument("--model-name", help="the registered model whose alias follows (default: the endpoint's name)")
    options.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else ~/.kube/config)")
    options.add_argument("--timeout", dest="timeout_s", type=float,
                         help="longest wait in seconds for the previous version to be Ready (kubernetes)")
    return options


def read_params_file(path: str | None) -> dict:
    """The run arguments in a JSON or YAML file: a mapping of parameter names to values."""
    if not path:
        return {}
    import yaml

    fix = 'write a JSON or YAML mapping, e.g. {"epochs": 50, "data_uri": "gs://bucket/data.csv"}'
    try:
        with open(path) as file:
            loaded = yaml.safe_load(file)
    except OSError as err:
        raise InvalidInputError("--params", f"cannot read '{path}' ({err.strerror})", fix) from None
    except yaml.YAMLError as err:
        raise InvalidInputError("--params", f"'{path}' is not JSON or YAML ({err})", fix) from None
    if not isinstance(loaded, dict):
        raise InvalidInputError("--params", f"'{path}' holds no mapping of parameter names to values", fix)
    return loaded


def given(args, *names: str) -> dict:
    """The options given on the command line, as keyword arguments; the others keep the KFP client's defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def on_cluster(command):
    """Runs a command that talks to the KFP API; a refusal or an unreachable API ends it with a message."""
    def run(args) -> int:
        from kfp_server_api import ApiException

        from kubeline.cluster.kfp_client import api_message
        from kubeline.core.errors import ServiceUnavailableError

        try:
            return command(args)
        except ApiException as err:
            print(f"kubeline: the Kubeflow Pipelines API refused it: {api_message(err)}", file=sys.stderr)
        except ServiceUnavailableError as err:
            print(f"kubeline: {err}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return run


@on_cluster
def cmd_submit(args) -> int:
    from kubeline.cluster.kfp_client import KubelineClient

    client = KubelineClient(args.host, args.namespace)
    arguments = {**read_params_file(args.params), **parse_set(args.set)}
    outcome = client.submit(args.pipeline, arguments, **given(args, "experiment", "run_name", "version_name"))
    print(f"started run {outcome.run_id}: {outcome.url}")
    if not args.wait:
        return 0
    outcome = client.wait(outcome.run_id, **given(args, "timeout_s", "poll_s"))
    print(outcome)
    return 0 if outcome.succeeded else EXIT_RUN_FAILED


@on_cluster
def cmd_schedule(args) -> int:
    from kubeline.cluster.kfp_client import KubelineClient

    arguments = {**read_params_file(args.params), **parse_set(args.set)}
    changes = KubelineClient(args.host, args.namespace).schedule(
        args.pipeline, args.name, args.cron, arguments, no_catchup=args.no_catchup, enabled=not args.paused,
        dry_run=args.dry_run, **given(args, "experiment", "start_time", "end_time", "max_concurrency",
                                      "version_name"))
    print("plan (--dry-run: nothing was changed):" if args.dry_run else "done:")
    for change in changes:
        print(f"  {change}")
    return 0


def cluster_options() -> argparse.ArgumentParser:
    """The options submit and schedule share: the pipeline, its arguments, where it goes."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("pipeline", metavar="PIPELINE_YAML",
                         help="compiled pipeline, e.g. pipelines/compiled/training_pipeline.yaml")
    options.add_argument("--params", metavar="FILE", help="JSON or YAML file of parameter: value")
    options.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                         help="set a pipeline parameter (JSON value; over --params), e.g. --set epochs=50")
    options.add_argument("--experiment", help="KFP experiment, created if missing (default: Default)")
    options.add_argument("--version", dest="version_name", metavar="NAME",
                         help="pipeline version name (default: sha256-<digest of the file>)")
    options.add_argument("--host", help="KFP API endpoint (default: $KFP_HOST, else kfp's: $KF_PIPELINES_ENDPOINT, "
                                        "in-cluster, kubeconfig)")
    options.add_argument("--namespace", help="your namespace in multi-user Kubeflow")
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the training pipeline")
    run.add_argument("--local", action="store_true", help="run on this machine with kfp.local")
    run.add_argument("--data", help="CSV or Parquet path or URI (default: the Palmer penguins CSV)")
    run.add_argument("--label", help="column to predict (default with penguins: species)")
    run.add_argument("--output-dir", default="runs/latest", help="where outputs and summary.json go")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="set a pipeline parameter (JSON value), e.g. --set epochs=50 "
                          "--set 'thresholds={\"accuracy\": 0.95}'")
    run.add_argument("--model-root", help="file:// or gs:// root for pushed models (default: OUTPUT_DIR/models)")
    run.add_argument("--cache", action="store_true", help="reuse outputs of unchanged steps from earlier runs")
    run.add_argument("--verbose", action="store_true", help="show every step's log here as well as in its file")
    run.set_defaults(func=cmd_run)
    compile_cmd = commands.add_parser("compile", help="compile every pipeline to YAML")
    compile_cmd.add_argument("modules", nargs="*", metavar="MODULE",
                             help="modules whose pipelines to compile (default: kubeline's own)")
    compile_cmd.add_argument("--out-dir", help="default: pipelines/compiled in the package")
    compile_cmd.set_defaults(func=cmd_compile)
    check = commands.add_parser("check", help="for CI: fail when a committed pipeline YAML is stale, does not parse "
                                              "strictly, or does what KFP's backend would not")
    check.add_argument("modules", nargs="*", metavar="MODULE",
                       help="modules whose pipelines to check: a PIPELINES mapping, else every @dsl.pipeline "
                            "defined there, as <name>.yaml (default: kubeline's own)")
    check.add_argument("--compiled-dir", help="where the committed YAML is (default: pipelines/compiled in the "
                                              "package)")
    check.add_argument("--crds", metavar="DIR",
                       help="a folder with the upstream schemas (katib/openapi-swagger.json, kserve/serving.kserve."
                            "io_inferenceservices.yaml): also validate the Katib Experiment and InferenceService the "
                            "steps would create with the pipeline's defaults")
    check.set_defaults(func=cmd_check)
    submit = commands.add_parser("submit", parents=[cluster_options()],
                                 help="upload a compiled pipeline to Kubeflow Pipelines and start a run")
    submit.add_argument("--run-name", help="default: the pipeline name and the time")
    submit.add_argument("--wait", action="store_true", help="wait for the run's end; exit 1 unless it succeeded")
    submit.add_argument("--timeout", dest="timeout_s", type=float, metavar="SECONDS",
                        help="longest --wait (default: 6 h; the run goes on)")
    submit.add_argument("--poll", dest="poll_s", type=float, metavar="SECONDS",
                        help="seconds between --wait checks (default: 10)")
    submit.set_defaults(func=cmd_submit)
    schedule = commands.add_parser("schedule", parents=[cluster_options()],
                                   help="create or update a recurring run of a compiled pipeline, by name")
    schedule.add_argument("--name", required=True, help="the recurring run's name (unique in the experiment)")
    schedule.add_argument("--cron", required=True,
                          help="5 fields (minute hour day-of-month month day-of-week, e.g. '0 3 * * *'), "
                               "KFP's 6 (seconds first) or @daily etc., in the scheduler's time zone")
    schedule.add_argument("--start-time", metavar="RFC3339", help="no runs before, e.g. 2025-01-31T00:00:00Z")
    schedule.add_argument("--end-time", metavar="RFC3339", help="no runs after")
    schedule.add_argument("--max-concurrency", type=int, metavar="N", help="runs at once, 1-10 (default: 1)")
    schedule.add_argument("--no-catchup", action="store_true",
                          help="after a pause or a past start time, start only the latest missed run")
    schedule.add_argument("--paused", action="store_true", help="create it disabled")
    schedule.add_argument("--dry-run", action="store_true", help="show what would change and change nothing")
    schedule.set_defaults(func=cmd_schedule)
    serve = commands.add_parser("serve", help="list or stop local model endpoints (deploy_target=local)")
    serve.add_argument("action", choices=["list", "stop"])
    serve.add_argument("name", nargs="?", help="deployment to stop")
    serve.set_defaults(func=cmd_serve)
    replay_cmd = commands.add_parser("replay", help="send rows of a file to an endpoint at a steady rate (traffic "
                                                    "for a canary to be judged on)")
    replay_cmd.add_argument("endpoint", metavar="ENDPOINT", help="a local deployment's name, or a server's URL")
    replay_cmd.add_argument("--data", help="CSV or Parquet path or URI; its feature columns are sent (default: the "
                                           "penguins data kubeline run --local trains on)")
    replay_cmd.add_argument("--shift", action="append", default=[], metavar="FEATURE=NUMBER",
                            help="add NUMBER to a numeric feature of every row, e.g. --shift body_mass_g=800")
    replay_cmd.add_argument("--replace", action="append", default=[], metavar="FEATURE=VALUE",
                            help="send VALUE for a feature in every row, e.g. --replace island=Atlantis")
    replay_cmd.add_argument("--model", help="the model's name (default: the deployment's; needed with a URL)")
    replay_cmd.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    replay_cmd.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    replay_cmd.add_argument("--concurrency", type=int, default=4, help="requests in flight at most (default 4)")
    replay_cmd.set_defaults(func=cmd_replay)
    monitor = commands.add_parser("monitor", help="check a window of logged traffic for drift against the serving "
                                  "model's reference profile; on drift, rerun the pipeline that trained it")
    monitor.add_argument("window", metavar="WINDOW", help="payload log folder or prefix, or a CSV/Parquet/JSONL file")
    monitor.add_argument("--model", required=True, metavar="models:/NAME@ALIAS", help="the serving version")
    monitor.add_argument("--tracking-uri", required=True, help="MLflow tracking URI of the registry")
    monitor.add_argument("--state", required=True, metavar="DIR",
                         help="folder kept between checks: the retrain ledger, each check's reports, local runs")
    monitor.add_argument("--local", action="store_true", help="retrain on this machine with kfp.local (the "
                         "arguments kubeline run --local recorded); default: a run through the KFP API")
    monitor.add_argument("--host", help="KFP API endpoint, without --local (default: $KFP_HOST, else kfp's)")
    monitor.add_argument("--window-hours", type=float,
                         help="only payload log files written in the last N hours (default: every file)")
    monitor.add_argument("--min-rows", type=int, help="fewest rows to decide on (default: the drift step's)")
    monitor.add_argument("--pushgateway-url", help="a Prometheus Pushgateway that gets the drift gauges (the "
                         "drift alert of kubeline alerts reads them)")
    monitor.add_argument("--endpoint", dest="endpoint_name", help="the endpoint whose traffic the window is: the "
                         "gauges' model label (with --pushgateway-url)")
    monitor.add_argument("--cooldown-hours", type=float,
                         help="fewest hours between two retrains (default: the retrain step's)")
    monitor.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                         help="a training parameter that replaces the repeated run's, e.g. --set data_uri=new.csv")
    monitor.add_argument("--dry-run", action="store_true", help="decide and report; start nothing, record nothing")
    monitor.set_defaults(func=on_cluster(cmd_monitor))
    card = commands.add_parser("model-card", help="write a registered version's model card (JSON, Markdown, HTML)")
    card.add_argument("model", metavar="NAME@ALIAS", help="NAME@ALIAS, NAME/VERSION, models:/... or a storage URI")
    card.add_argument("--tracking-uri", default="sqlite:///runs/latest/mlflow.db",
                      help="MLflow tracking and registry URI (default: make run's, sqlite:///runs/latest/mlflow.db)")
    card.add_argument("--out-dir", default="model-card", help="where the card's files go (default: model-card)")
    card.add_argument("--owner", action="append", default=[], metavar="NAME", help="an owner of the model (repeatable)")
    card.add_argument("--attach", action="store_true", help="also log the files to the version's MLflow run")
    card.set_defaults(func=cmd_model_card)
    rollback_cmd = commands.add_parser("rollback", parents=[rollback_options()],
                                       help="take an endpoint back to the version that served before (a canary "
                                            "in progress: out); the alias champion follows")
    rollback_cmd.add_argument("endpoint", metavar="ENDPOINT", help="the endpoint's name")
    rollback_cmd.add_argument("--from-version", help="roll back only while this version serves")
    rollback_cmd.set_defaults(func=cmd_rollback)
    webhook = commands.add_parser("alert-webhook", parents=[rollback_options()],
                                  help="Alertmanager's webhook receiver on 127.0.0.1: a firing alert labelled with an "
                                       "endpoint rolls it back (examples/alertmanager/)")
    webhook.add_argument("--port", type=int, default=9095, help="port on 127.0.0.1 (default 9095)")
    webhook.set_defaults(func=cmd_alert_webhook)
    alerts = commands.add_parser("alerts", help="write an endpoint's PodMonitor, PrometheusRule, Grafana dashboard "
                                                "and promtool rule tests from its alerting config")
    alerts.add_argument("config", metavar="CONFIG", help="YAML or JSON: name, namespace, runbook_url, SLO (docs/"
                                                         "operations.md)")
    alerts.add_argument("--out-dir", required=True, help="where the files go (replaced whole)")
    alerts.set_defaults(func=cmd_alerts)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kubeline.core.errors import ServiceUnavailableError

    try:
        return args.func(args)
    except InvalidInputError as err:
        print(f"kubeline: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ServiceUnavailableError as err:
        print(f"kubeline: {err}", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
