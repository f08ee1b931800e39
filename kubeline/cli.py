"""The ``kubeline`` command: run the pipeline locally, compile pipelines, manage local endpoints."""
from __future__ import annotations

import argparse
import json
import sys

from kubeline.errors import InvalidInputError

EXIT_USER_ERROR = 2
EXIT_GATE_FAILED = 3


def parse_set(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise InvalidInputError("--set", f"'{item}' is not NAME=VALUE", "write e.g. --set epochs=50")
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
    from kubeline.local_run import render_summary, run_local

    try:
        summary = run_local(args.output_dir, args.data or "", args.label or "", parse_set(args.set),
                            enable_caching=args.cache, model_root=args.model_root or "")
    except RuntimeError as err:
        print(f"\nkubeline: the pipeline failed: {err}\nThe failing step's log is above.", file=sys.stderr)
        return 1
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
    report = check(selected_pipelines(args.modules) or PIPELINES, compiled_dir)
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
    check.set_defaults(func=cmd_check)
    serve = commands.add_parser("serve", help="list or stop local model endpoints (deploy_target=local)")
    serve.add_argument("action", choices=["list", "stop"])
    serve.add_argument("name", nargs="?", help="deployment to stop")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InvalidInputError as err:
        print(f"kubeline: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
