"""The step runner of ``make gpu-check`` (bench/gpu_steps.py): a step past its timeout stopped with
every process it started, a step's status from its exit status, the JSON written whole, and the
summary table."""

import json
import os
import time
from pathlib import Path

import psutil

from bench.gpu_steps import (
    FAILED,
    PASSED,
    SKIP_STATUS,
    SKIPPED,
    TIMED_OUT,
    Outcome,
    Step,
    run_step,
    slug,
    summary_table,
    write_json,
)

from .conftest import PYTHON


def sleeper_with_children(pids: Path) -> list[str]:
    """A step that starts a child in its group and one in a session of its own (as `bentoml serve`
    is started), ignores SIGTERM itself, and sleeps."""
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "children = [subprocess.Popen(['sleep', '60']),\n"
        "            subprocess.Popen(['sleep', '60'], start_new_session=True)]\n"
        f"open({str(pids)!r}, 'w').write(' '.join(str(c.pid) for c in children))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    return [PYTHON, "-c", script]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_step_past_its_timeout_is_stopped_with_every_process_it_started(tmp_path: Path) -> None:
    step = Step("hangs", sleeper_with_children(tmp_path / "pids"), timeout_s=2)
    began = time.monotonic()
    outcome = run_step(step, tmp_path / "logs" / "hangs.log", os.environ, tmp_path, grace_s=0.5)
    assert outcome.status == TIMED_OUT and outcome.returncode is None and not outcome.ok
    assert 2 <= outcome.seconds < 10 and time.monotonic() - began < 10
    children = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert all(gone(pid) for pid in children), "a child of the step outlived it"
    log = (tmp_path / "logs" / "hangs.log").read_text().splitlines()
    assert log[0].startswith(f"$ {PYTHON} -c ") and "started" in log
    assert outcome.last_line == "gpu-check: timed out after 2 s: stopped 3 process(es)" == log[-1]


def test_a_step_passes_fails_or_skips_by_its_exit_status(tmp_path: Path) -> None:
    def run(code: str) -> Outcome:
        step = Step("s", [PYTHON, "-c", code], timeout_s=30, env={"SAID": "from the step's env"})
        return run_step(step, tmp_path / "s.log", os.environ, tmp_path)

    passed = run("import os; print(os.environ['SAID'])")
    assert (passed.status, passed.returncode, passed.last_line) == (PASSED, 0, "from the step's env")
    failed = run("raise SystemExit('broken')")
    assert (failed.status, failed.returncode, failed.last_line) == (FAILED, 1, "broken")
    not_here = run(f"print('skipped: no docker'); raise SystemExit({SKIP_STATUS})")
    assert (not_here.status, not_here.last_line, not_here.ok) == (SKIPPED, "skipped: no docker", True)


def test_json_is_written_whole_and_the_summary_has_a_row_per_step(tmp_path: Path) -> None:
    path = tmp_path / "out" / "result.json"
    write_json(path, {"log": tmp_path / "a.log", "rate": 1.5})
    assert json.loads(path.read_text()) == {"log": str(tmp_path / "a.log"), "rate": 1.5}
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no partial file left
    outcomes = [
        Outcome("train demo", PASSED, 61.4, "l"),
        Outcome("serve", TIMED_OUT, 30, "l", last_line="x|y"),
    ]
    table = summary_table(outcomes, {"train demo": "1,234 images/s"}).splitlines()
    assert table[2] == "| train demo | passed | 61 | 1,234 images/s |"
    assert table[3] == "| serve | TIMED OUT | 30 | x/y |"
    assert slug("train resnet18, bf16-mixed, 2 GPUs") == "train-resnet18-bf16-mixed-2-gpus"
