"""What ``kubeline run --local`` shows: one line per step with its state and time, a live line for the running
step (trials or epochs, from ``kubeline.core.progress`` lines), and every log line in a file per step.

kfp.local prints everything to this process's stdout: its own log lines ("Executing task 'ingest'", "Task
'ingest' finished with status SUCCESS", cache hits) and each step's streamed output. ``StepLogs`` is that stdout
while the pipeline runs; the patterns below are kfp.local's (kfp/local/task_dispatcher.py and
orchestrator/task_executor.py of the locked kfp), held to it by tests/test_local_run.py.
"""
from __future__ import annotations

import io
import re
import time
from collections import deque
from pathlib import Path

from kubeline.core import progress

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
CACHED = re.compile(r"Task '?([\w-]+)'? cache hit")
PIPELINE_FINISHED = re.compile(r"Pipeline '[^']+' finished with status")
RUN_LOG = "run"  # lines outside any step: kfp.local's pipeline lines
TAIL_LINES = 25


class StepLogs(io.TextIOBase):
    """A text stream that files each line under its step (``<log_dir>/<step>.log``) and tells ``console`` when a
    step starts, progresses and ends. With ``verbose``, every line is shown as well."""

    def __init__(self, log_dir: str | Path, console, verbose: bool = False):
        from rich.live import Live

        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.console, self.verbose = console, verbose
        self.step, self.started, self.pending = RUN_LOG, time.monotonic(), ""
        self.files: dict[str, io.TextIOBase] = {}
        self.tails: dict[str, deque] = {}
        self.finished: dict[str, str] = {}
        self.live = Live("", console=console, transient=True, refresh_per_second=4, redirect_stdout=False,
                         redirect_stderr=False)

    # -- the stream -------------------------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        for handle in self.files.values():
            handle.flush()

    def __enter__(self):
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.pending:
            self._line(self.pending)
        self.live.stop()
        for handle in self.files.values():
            handle.close()

    # -- what a line means ----------------------------------------------------------------------------
    def _line(self, line: str) -> None:
        plain = ANSI.sub("", line)
        started, finished, cached = STARTED.search(plain), FINISHED.search(plain), CACHED.search(plain)
        if started:
            self.step, self.started = started[1], time.monotonic()
            self._show_running("")
        self._file(self.step).write(plain + "\n")
        self.tails.setdefault(self.step, deque(maxlen=TAIL_LINES)).append(plain)
        if self.verbose:
            self.live.console.print(line, markup=False, highlight=False)
        if cached:
            self._done(cached[1], "CACHED")
        elif finished:
            self._done(finished[1], finished[2])  # the step's outputs follow: its log goes on until the next
        elif PIPELINE_FINISHED.search(plain):
            self.step = RUN_LOG
        elif (update := progress.parse(plain)) is not None:
            note = f", {update['note']}" if update.get("note") else ""
            self._show_running(f"{update['done']}/{update['total']} {update['unit']}{note}")

    def _file(self, step: str):
        if step not in self.files:
            self.files[step] = open(self.log_dir / f"{step}.log", "a", encoding="utf-8")
        return self.files[step]

    def _show_running(self, detail: str) -> None:
        from rich.spinner import Spinner

        self.live.update(Spinner("dots", f" {self.step}  running {time.monotonic() - self.started:.0f} s"
                                         f"{'  ' + detail if detail else ''}"))

    def _done(self, step: str, status: str) -> None:
        self.finished[step] = status
        seconds = time.monotonic() - self.started if step == self.step else 0.0
        mark = {"SUCCESS": "[green]✓[/]", "CACHED": "[cyan]↺[/]"}.get(status, "[red]✗[/]")
        self.live.update("")
        self.live.console.print(f"{mark} {step:<12} {status.lower():<8} {seconds:6.1f} s   "
                                f"[dim]{self.log_dir / (step + '.log')}[/]", highlight=False, soft_wrap=True)

    # -- after a failure --------------------------------------------------------------------------------
    def failed_step(self) -> str:
        """The step that failed: the last one that ended in failure, else the one that was running."""
        failures = [step for step, status in self.finished.items() if status not in ("SUCCESS", "CACHED")]
        return failures[-1] if failures else self.step

    def tail(self, step: str) -> list[str]:
        return list(self.tails.get(step, []))

    def log_path(self, step: str) -> Path:
        return self.log_dir / f"{step}.log"
