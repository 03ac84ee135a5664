"""The steps of ``bench.gpu_check``: each a command in its own process group, with its own
timeout and log, and the JSON file the check writes as it goes.

A step that runs past its timeout is stopped with its whole process tree: its process group, and
the descendants that left it (``bentoml serve`` starts its servers in sessions of their own), found
before any of them dies, since an orphan no longer shows whose it was. SIGTERM first, so servers
shut down and containers are removed; SIGKILL ``grace_s`` later for what is still there. A hung
NCCL collective or CUDA call then costs its timeout, never the whole check.
"""

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

PASSED, FAILED, TIMED_OUT, SKIPPED = "passed", "failed", "timed out", "skipped"
# A step's own exit status for "nothing to measure on this host" (automake's SKIP); its reason is
# the last line of its log.
SKIP_STATUS = 77
GRACE_S = 10.0
PYTHON = sys.executable  # the Python the steps' commands run: the check's own


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]
    timeout_s: float
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the check's environment
    needs: tuple[str, ...] = ()  # steps that must have passed first, else this one is skipped


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # PASSED, FAILED, TIMED_OUT or SKIPPED
    seconds: float
    log: str  # the log's path; "" for a step that never ran
    returncode: int | None = None  # None: timed out, or never ran
    last_line: str = ""  # of its log, or why it was skipped

    @property
    def ok(self) -> bool:
        return self.status in (PASSED, SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def skipped(name: str, reason: str) -> Outcome:
    return Outcome(name, SKIPPED, 0.0, "", last_line=reason)


def slug(name: str) -> str:
    """A file name for a step: "train resnet18, bf16-mixed" -> "train-resnet18-bf16-mixed"."""
    kept = "".join(c if c.isalnum() or c in "-." else " " for c in name.lower())
    return "-".join(kept.split())


def run_step(
    step: Step, log_path: Path, env: Mapping[str, str], cwd: Path, grace_s: float = GRACE_S
) -> Outcome:
    """Run ``step`` in a process group of its own, its output to ``log_path`` after the command line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("w") as log:
        log.write(f"$ {shlex.join(step.command)}\n")
        log.flush()
        process = subprocess.Popen(
            step.command,
            cwd=cwd,
            env={**env, **step.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode: int | None = process.wait(timeout=step.timeout_s)
        except subprocess.TimeoutExpired:
            stopped = stop_tree(process, grace_s)
            log.write(f"\ngpu-check: timed out after {step.timeout_s:.0f} s: stopped {stopped} process(es)\n")
            returncode = None
        except BaseException:  # Ctrl-C on the check: its step goes too
            stop_tree(process, grace_s)
            raise
        else:
            signal_group(process.pid, signal.SIGKILL)  # what it left behind in its group
    seconds = time.monotonic() - started
    status = TIMED_OUT if returncode is None else {0: PASSED, SKIP_STATUS: SKIPPED}.get(returncode, FAILED)
    return Outcome(step.name, status, seconds, str(log_path), returncode, last_line(log_path))


def stop_tree(process: subprocess.Popen[bytes], grace_s: float) -> int:
    """SIGTERM ``process``, its group and every descendant; SIGKILL them ``grace_s`` later if still
    there. Returns how many processes it signalled."""
    tree = descendants(process.pid)
    signal_group(process.pid, signal.SIGTERM)
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    # Descendants started meanwhile count too (a process manager restarting its workers).
    tree += [p for p in descendants(process.pid) if p not in tree]
    alive = still_running(tree, deadline - time.monotonic())
    signal_group(process.pid, signal.SIGKILL)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    process.wait()
    still_running(alive, grace_s)
    return 1 + len(tree)


def still_running(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``processes`` still running after up to ``timeout`` s. A zombie counts as gone:
    an orphan's is reaped by whatever adopted it, which may be slow to (or never, in a container
    whose first process reaps nothing)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def last_line(log: Path, width: int = 160) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip()[:width] if lines else ""


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` whole or not at all (a check killed mid-write leaves the previous file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(partial, path)


def read_json(path: Path) -> Any:
    """A step's JSON output, or None where it wrote none (it failed first)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def summary_table(outcomes: list[Outcome], headlines: Mapping[str, str]) -> str:
    """Markdown: one row per step, its headline figure where it has one, else its log's last line."""
    rows = ["| step | result | seconds | figures, or the last line of its log |", "|--|--|--:|--|"]
    for outcome in outcomes:
        result = outcome.status
        if outcome.status == FAILED:
            result = f"FAILED ({outcome.returncode})"
        elif outcome.status == TIMED_OUT:
            result = "TIMED OUT"
        text = headlines.get(outcome.name) or outcome.last_line
        rows.append(f"| {outcome.name} | {result} | {outcome.seconds:.0f} | {text.replace('|', '/')} |")
    return "\n".join(rows)
