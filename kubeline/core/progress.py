"""Progress lines: how far a long step is (trials, epochs), printed by the step and shown by ``kubeline run``.

One line of JSON after ``PREFIX``. It holds no ``name=value`` pair, so Katib's StdOut metrics collector,
which reads every such pair in a trial's output, never takes it for a metric.
"""
from __future__ import annotations

import json

PREFIX = "kubeline-progress: "


def line(done: int, total: int, unit: str, note: str = "") -> str:
    if "=" in note:
        raise ValueError(f"a progress note may not contain '=' (Katib would read it as a metric): {note!r}")
    return PREFIX + json.dumps({"done": done, "total": total, "unit": unit, "note": note})


def report(done: int, total: int, unit: str, note: str = "") -> None:
    """Prints a progress line, flushed at once (the step's output is streamed)."""
    print(line(done, total, unit, note), flush=True)


def parse(text: str) -> dict | None:
    """The progress in a line of a step's output, or None."""
    start = text.find(PREFIX)
    if start < 0:
        return None
    try:
        progress = json.loads(text[start + len(PREFIX):])
    except json.JSONDecodeError:
        return None
    return progress if isinstance(progress, dict) and {"done", "total", "unit"} <= progress.keys() else None
