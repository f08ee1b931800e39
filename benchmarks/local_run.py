"""Benchmark the local penguin run: wall time per step and in total, peak memory, tuning trials.

Runs `kubeline run --local` in a fresh output folder (no cache) and samples the memory of its whole
process tree every 0.1 s. Prints a table; pass --json for machine-readable output.

    python benchmarks/local_run.py [--output-dir DIR] [--set NAME=VALUE ...] [--json]
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

STEP_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task|Task) '([\w-]+)'(?: finished)?")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def sample_memory(root: psutil.Process, stop: threading.Event, peaks: dict) -> None:
    while not stop.is_set():
        try:
            processes = [root, *root.children(recursive=True)]
            rss = {}
            for process in processes:
                try:
                    rss[process.pid] = process.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            peaks["tree"] = max(peaks["tree"], sum(rss.values()))
            peaks["process"] = max(peaks["process"], max(rss.values(), default=0))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)


def step_times(log: str) -> dict:
    started, seconds = {}, {}
    for line in ANSI.sub("", log).splitlines():
        match = STEP_LINE.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%H:%M:%S.%f")
        if match.group(2) == "Executing task":
            started[match.group(3)] = stamp
        elif match.group(3) in started:
            seconds[match.group(3)] = (stamp - started[match.group(3)]).total_seconds()
    return seconds


def tuning_figures(tuning: dict) -> dict:
    if "skipped" in tuning:
        return {"trials": 0}
    trials = tuning["trials"]
    return {"trials": len(trials), "succeeded": sum(t["state"] == "Succeeded" for t in trials),
            "best_accuracy": tuning["best"].get("accuracy"), "best_parameters": tuning["best"]["parameters"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="default: a new temporary folder")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="kubeline-bench-"))
    command = [str(Path(sys.executable).parent / "kubeline"), "run", "--local", "--output-dir", str(out)]
    for item in args.set:
        command += ["--set", item]

    peaks = {"tree": 0, "process": 0}
    stop = threading.Event()
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = threading.Thread(target=sample_memory, args=(process, stop, peaks), daemon=True)
    sampler.start()
    log = process.communicate()[0]
    total = time.perf_counter() - started
    stop.set()
    sampler.join()
    (out / "benchmark.log").write_text(log)
    if process.returncode not in (0, 3):
        print(log[-5000:])
        print(f"run failed with exit code {process.returncode}", file=sys.stderr)
        return 1

    steps = step_times(log)
    summary = json.loads((out / "summary.json").read_text())
    report = {"total_wall_s": round(total, 2), "steps_s": {k: round(v, 2) for k, v in steps.items()},
              "peak_rss_largest_process_mb": round(peaks["process"] / 2**20),
              "peak_rss_process_tree_mb": round(peaks["tree"] / 2**20),
              "accuracy": summary["metrics"]["accuracy"], "gate": summary["gate"]["decision"],
              "tuning": tuning_figures(summary["tuning"]),
              "output_dir": str(out)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'step':<12}{'wall s':>10}")
    for name, seconds in report["steps_s"].items():
        print(f"{name:<12}{seconds:>10.2f}")
    print(f"{'steps sum':<12}{sum(steps.values()):>10.2f}")
    print(f"{'total':<12}{total:>10.2f}   (CLI start to exit: preflight, kfp.local, summary)")
    print(f"peak RSS: largest process {report['peak_rss_largest_process_mb']} MB, "
          f"whole process tree {report['peak_rss_process_tree_mb']} MB")
    tuning = report["tuning"]
    if tuning["trials"]:
        print(f"tune: {tuning['trials']} trials ({tuning['succeeded']} succeeded), best trial accuracy "
              f"{tuning['best_accuracy']:.4f} with {tuning['best_parameters']}")
    print(f"eval accuracy {report['accuracy']:.4f}, gate {report['gate']}; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
