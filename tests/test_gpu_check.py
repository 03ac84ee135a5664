"""``make gpu-check`` (bench/gpu_check.py) as far as a host without a GPU can take it: the one line
after the pre-flight and the JSON it writes, and the runner that takes the planned steps in order.
Its parts have files of their own: test_gpu_preflight.py, test_gpu_steps.py, test_gpu_plan.py,
test_gpu_nvml.py, test_gpu_container.py, test_gpu_model.py, test_gpu_timing.py, test_gpu_python.py."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.gpu_check import run_planned
from bench.gpu_plan import DEMO_RUN, Planned
from bench.gpu_steps import FAILED, PASSED, SKIPPED, Step
from harness.server import ROOT
from models.device import cuda_report

from .conftest import PYTHON


@pytest.mark.skipif(cuda_report().problem() is None, reason="CUDA can be used here")
def test_gpu_check_says_why_in_one_line_and_exits_0_after_the_pre_flight(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "bench.gpu_check", "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("gpu-check: python 3.11") and "torch 2.13.0" in lines[0]
    assert lines[1].startswith("gpu-check: NVIDIA driver")
    # The one line that says why, naming the real cause on this host: torch's CPU-only build.
    assert lines[-1].startswith("gpu-check: CUDA cannot be used here, nothing else checked: ")
    assert "CPU-only build" in lines[-1] and len([line for line in lines if "cannot be used" in line]) == 1
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["preflight"]["problem"] in lines[-1] and written["steps"] == []
    assert written["versions"]["torch"].startswith("2.13.0") and written["versions"]["python"].startswith(
        "3.11"
    )
    assert len(written["versions"]["git"]["commit"]) == 40
    assert not (tmp_path / "out" / "train").exists()  # nothing else ran


def test_steps_run_in_order_and_one_whose_needs_failed_is_skipped(tmp_path: Path) -> None:
    planned = [
        Planned(Step(DEMO_RUN, [PYTHON, "-c", "raise SystemExit(3)"], 30), "training"),
        Planned(Step("uses the model", [PYTHON, "-c", "print(1)"], 30, needs=(DEMO_RUN,)), "serving"),
        Planned(Step("two GPUs", [PYTHON, "-c", "print(1)"], 30), "training", skip_reason="torch sees 1 GPU"),
        Planned(Step("measures", [PYTHON, "-c", "print(2)"], 30), "model", lambda _: ({"x": 2}, "x is 2")),
    ]
    result: dict[str, Any] = {"steps": [], "measurements": {}}
    outcomes = run_planned(planned, result, tmp_path, dict(os.environ))
    assert [o.status for o in outcomes] == [FAILED, SKIPPED, SKIPPED, PASSED]
    assert outcomes[1].last_line == f"needs {DEMO_RUN}, which did not pass"
    written = json.loads((tmp_path / "result.json").read_text())
    assert [s["name"] for s in written["steps"]] == [p.step.name for p in planned]
    assert written["measurements"] == {"measures": {"x": 2}}
    assert (tmp_path / "logs" / "train-demo.log").exists() and not (
        tmp_path / "logs" / "two-gpus.log"
    ).exists()
