"""``make gpu-check`` (bench/gpu_check.py and its bench/gpu_*.py parts) as far as a host without a GPU
can take it: the pre-flight's one line, the step runner's timeouts, the JSON it writes, the Python
finder, the NVML sampler on a stand-in, and the model measurements on the CPU."""

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pynvml
import pytest
import torch

from bench import gpu_model
from bench.gpu_check import (
    DEMO_RUN,
    Planned,
    container_step,
    model_step,
    plan,
    preflight_lines,
    run_planned,
    serving_step,
    training_rate,
)
from bench.gpu_container import on_cuda, serving_device
from bench.gpu_nvml import MIB, sampling
from bench.gpu_probe import probe
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
from harness.server import ROOT
from models.device import CudaReport, Gpu, cuda_report

PYTHON = sys.executable


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


def test_the_pre_flight_names_the_driver_each_gpu_and_the_wheels_kernels() -> None:
    report = CudaReport("2.13.0+cu130", "13.0", "580.65.06", "13.0", (Gpu(0, "NVIDIA H100", (9, 0), 81559),))
    probed = {"arch_list": ["sm_80", "sm_90", "compute_120"], "cudnn": 91002, "bf16": True, "devices": [{}]}
    lines = preflight_lines(report, probed)
    assert lines[0].endswith("torch 2.13.0+cu130, built for CUDA 13.0")
    assert lines[1] == "NVIDIA driver 580.65.06, runs CUDA up to 13.0"
    assert lines[2] == "cuda:0 NVIDIA H100: compute 9.0, 81,559 MiB, float32 math in tf32"
    assert (
        lines[3]
        == "torch's kernels: sm_80 sm_90 compute_120; cuDNN 91002; bf16 in hardware: yes; torch sees 1 GPU(s)"
    )


def test_the_probe_says_torch_sees_no_device_here() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    found = probe()
    assert found["available"] is False and found["arch_list"] == [] and found["devices"] == []
    assert found["problem"].startswith(f"torch {torch.__version__} sees no CUDA device")


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


def planned_for(probed: dict[str, Any], *skip: str) -> dict[str, Planned]:
    args = argparse.Namespace(out=Path("out"), timeout_factor=2.0, epochs=3, model_seconds=1.0,
                              serving_seconds=10.0, skip=list(skip))  # fmt: skip
    return {p.step.name: p for p in plan(args, probed)}


def test_the_plan_trains_bf16_where_the_gpu_has_it_and_skips_two_gpus_on_one() -> None:
    steps = planned_for({"bf16": True, "devices": [{}]})
    assert list(steps)[:4] == [
        "gpu tests",
        DEMO_RUN,
        "train resnet18, 32-true, 1 GPU",
        "train resnet18, bf16-mixed, 1 GPU",
    ]
    two = steps["train resnet18, bf16-mixed, 2 GPUs"]
    assert two.skip_reason == "torch sees 1 GPU: 2 needed"
    output_dir = "out/train/train-resnet18-bf16-mixed-2-gpus"
    assert two.step.command[-5:] == ["--output-dir", output_dir, "--strategy", "ddp", "--no-store"]
    assert steps["gpu tests"].step.timeout_s == 3600  # --timeout-factor 2
    model = steps["model resnet18@128px"].step.command
    assert model[model.index("--torchscript") + 1] == "out/train/train-resnet18-32-true-1-gpu/model.pt"
    serving = steps["serving, both topologies on CUDA"]
    assert serving.step.env == {"FACE_ATTRIBUTES_DEVICE": "cuda"} and serving.sample_gpus
    assert serving.step.needs == (DEMO_RUN,)

    older = planned_for({"bf16": False, "devices": [{}, {}]}, "container")
    assert (
        "train resnet18, 16-mixed, 2 GPUs" in older
        and not older["train resnet18, 16-mixed, 2 GPUs"].skip_reason
    )
    assert older["-cuda image, docker run --gpus all"].skip_reason == "--skip container"


def test_training_images_per_s_come_from_the_tensorboard_log(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    # As Lightning writes them: the epoch's images (every process's) at the end of each epoch.
    with SummaryWriter(tmp_path / "tensorboard" / "version_0") as writer:
        for epoch, (images, end) in enumerate([(6400, 1000.0), (6400, 1004.0), (6400, 1006.0)]):
            writer.add_scalar("train/images", images, global_step=100 * epoch + 99, walltime=end)
    rate = training_rate(tmp_path)
    assert rate is not None and rate["epochs"] == 3
    assert rate["images_per_s"] == pytest.approx(2 * 6400 / 6.0)  # epochs 2 and 3, from the end of epoch 1
    assert rate["epoch_seconds"] == pytest.approx([4.0, 2.0])
    assert training_rate(tmp_path / "nothing here") is None


class StandInNvml:
    """NVML as pynvml shows it: one GPU whose utilisation goes 10, 50, 90, two processes on it."""

    NVMLError = pynvml.NVMLError

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init, self.reads, self.shut_down = fail_init, 0, False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        self.reads += 1
        return SimpleNamespace(gpu=(10, 50, 90)[self.reads % 3], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=(1000 + self.reads) * MIB)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        ours = SimpleNamespace(pid=os.getpid(), usedGpuMemory=(200 + self.reads) * MIB)
        return [ours, SimpleNamespace(pid=2**22 + 1, usedGpuMemory=None)]  # no such pid; memory not reported


def test_nvml_sampling_summarises_utilisation_and_each_process_memory(tmp_path: Path) -> None:
    nvml = StandInNvml()
    with sampling(nvml, interval_s=0.01) as sampler:
        time.sleep(0.3)
    summary = sampler.summary()
    assert nvml.shut_down and summary["error"] == ""
    (gpu,) = summary["gpus"]
    assert gpu["samples"] == nvml.reads >= 5
    assert gpu["utilisation_max_pct"] == 90 and 10 < gpu["utilisation_mean_pct"] < 90
    assert gpu["used_max_mib"] == 1000 + nvml.reads
    ours, unknown = summary["processes"]
    assert ours["pid"] == os.getpid() and ours["used_max_mib"] == 200 + nvml.reads
    assert "pytest" in ours["command"] or "python" in ours["command"]
    assert (unknown["command"], unknown["used_max_mib"]) == ("?", None)
    data, figures = serving_step(tmp_path, 1, 60).collect(sampler)  # serving.json: never written here
    assert data == {"bench": None, "nvml": summary}
    assert figures.startswith("GPU 0 utilisation mean ") and figures.endswith(
        f"the largest {200 + nvml.reads} MiB"
    )


def test_nvml_sampling_without_a_driver_says_why_and_samples_nothing() -> None:
    with sampling(StandInNvml(fail_init=True), interval_s=0.01) as sampler:
        pass
    said = f"NVML: {pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)}"
    assert sampler.summary() == {"interval_s": 0.01, "gpus": [], "processes": [], "error": said}
    if cuda_report().driver is None:  # this host: the real NVML finds no driver either
        with sampling(pynvml, interval_s=0.01) as real:
            pass
        assert real.summary()["error"].startswith("NVML: ") and real.samples == []


def test_the_device_is_read_from_metadata_whichever_way_it_says_it(tmp_path: Path) -> None:
    assert serving_device({"serving": {"device": "cuda", "precision": "tf32"}}) == "cuda"
    devices = {"devices": [{"device": "cuda:0", "name": "H100"}, {"device": "cuda:1"}]}
    assert serving_device(devices) == "cuda:0, cuda:1" and on_cuda(serving_device(devices))
    assert serving_device({"devices": [{"device": "cpu"}]}) == "cpu" and not on_cuda("cpu")
    assert serving_device({"serving": "cuda"}) is None and serving_device(["cuda"]) is None
    assert not on_cuda(None) and not on_cuda("cuda:0, cpu")
    write_json(tmp_path / "container.json", {"serving_device": "cuda:0", "predict_status": 200})
    assert container_step(tmp_path, 60).collect(None)[1] == "/metadata: runs on cuda:0; /predict 200"


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread: on a busy 2-core host (the test workers), its threads wait for each other
    at every layer, and a pass of the tiny network took 300 ms instead of 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_model_measurements_run_on_the_cpu_with_wall_time(tmp_path: Path, one_torch_thread: None) -> None:
    result = gpu_model.measure("demo", "tiny", 32, tmp_path / "missing.pt", torch.device("cpu"),
                               batch_sizes=(1, 2), seconds=0.01, matrix_batch=2)  # fmt: skip
    assert result["weights"].startswith("untrained") and result["clock"].startswith("wall time")
    assert result["precision"] == "fp32" and result["layout"] == "nhwc"
    rows = result["throughput"]
    assert [row["batch"] for row in rows] == [1, 2]
    for row in rows:
        assert row["passes"] >= gpu_model.LEAST_PASSES and row["images_per_s"] > 0
        parts = row["copy_in_ms"] + row["compute_ms"] + row["copy_out_ms"]
        assert 0 < row["compute_ms"] <= parts and row["peak_allocated_mib"] is None  # no CUDA memory here
    first = result["first_passes"]
    assert first["runtime_construct_s"] > 0
    for kind in ("runtime", "torchscript"):
        assert [row["batch"] for row in first[kind]] == [1, 2]
        assert all(row["first_ms"] > 0 and row["steady_ms"] > 0 for row in first[kind])
    matrix = {(row["precision"], row["layout"]): row for row in result["precision_matrix"]}
    assert set(matrix) == {(p, layout) for p in gpu_model.PRECISIONS for layout in gpu_model.LAYOUTS}
    assert all("error" not in row and row["images_per_s"] > 0 for row in matrix.values())
    assert matrix[("fp32", "nchw")]["max_abs_diff"] == 0  # the reference itself
    assert matrix[("fp32", "nhwc")]["max_abs_diff"] < 1e-5
    assert 0 < matrix[("bf16", "nhwc")]["max_abs_diff"] < 0.05  # autocast did run in bf16

    write_json(tmp_path / "model-demo.json", result)  # what the check reads back, and its summary line
    data, figures = model_step("demo", ("tiny", 32), tmp_path / "missing.pt", tmp_path, 1, 60).collect(None)
    assert data == result and figures.startswith("batch 1: ") and figures.endswith(" MiB; untrained")


REAL_PYTHON = os.path.realpath(sys.executable)  # this 3.11 itself, not the venv's link to it
FINDER = str(ROOT / "bench" / "gpu_python.py")


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_python(path: Path, version: str, venv_module: bool = True) -> Path:
    """An interpreter that answers the finder's probe as ``version`` would, with or without venv."""
    return executable(path, f"#!/bin/sh\necho {version}\necho {'venv' if venv_module else 'no venv'}\n")


def fake_uv(folder: Path, installs: str) -> Path:
    """uv, as far as the finder uses it: ``python find`` knows ``installs`` once ``python install``
    has run; every call is logged."""
    script = f"""#!/bin/sh
echo "$*" >> {folder}/uv.calls
case "$1 $2" in
  "python find")
    [ -e {folder}/installed ] || {{ echo "error: no interpreter" >&2; exit 2; }}
    echo {installs}; exit 0 ;;
  "python install") : > {folder}/installed; echo "Installed Python 3.11"; exit 0 ;;
esac
exit 1
"""
    return executable(folder / "bin" / "uv", script)


def find(tmp_path: Path, venv: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The finder with only ``tmp_path/bin`` on PATH."""
    return subprocess.run(
        [REAL_PYTHON, FINDER, "--venv", str(venv or tmp_path / "no-venv")],
        env={"PATH": str(tmp_path / "bin")}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def bin_folder(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    return tmp_path / "bin"


def test_the_finder_takes_python3_11_on_path(tmp_path: Path, bin_folder: Path) -> None:
    (bin_folder / "python3.11").symlink_to(REAL_PYTHON)
    fake_uv(tmp_path, "/never/used")
    found = find(tmp_path)
    assert (found.returncode, found.stdout) == (0, f"{bin_folder / 'python3.11'}\n"), found.stderr
    assert not (tmp_path / "uv.calls").exists()


def test_the_finder_has_uv_install_3_11_where_path_has_another_version(
    tmp_path: Path, bin_folder: Path
) -> None:
    fake_python(bin_folder / "python3.11", "3.12")  # a misnamed one
    fake_uv(tmp_path, REAL_PYTHON)
    found = find(tmp_path)
    assert (found.returncode, found.stdout) == (0, f"{REAL_PYTHON}\n"), (
        found.stderr
    )  # uv's words went to stderr
    assert "Installed Python 3.11" in found.stderr
    calls = (tmp_path / "uv.calls").read_text().splitlines()
    assert calls == ["python find 3.11", "python install 3.11", "python find 3.11"]


def test_the_finder_says_how_to_get_python_or_uv_when_there_is_neither(
    tmp_path: Path, bin_folder: Path
) -> None:
    fake_python(bin_folder / "python3.11", "3.11", venv_module=False)  # Debian's, without python3.11-venv
    found = find(tmp_path)
    assert found.returncode == 1 and found.stdout == ""
    assert found.stderr.startswith("gpu-check: no Python 3.11 to make the venv with: ")
    assert "apt-get install python3.11-venv" in found.stderr and "no uv on PATH" in found.stderr
    assert "pip install --user uv" in found.stderr


def test_the_finder_keeps_a_3_11_venv_and_refuses_one_of_another_version(
    tmp_path: Path, bin_folder: Path
) -> None:
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    fake_python(tmp_path / "venv" / "bin" / "python", "3.11")
    assert find(tmp_path, tmp_path / "venv").stdout == f"{tmp_path / 'venv' / 'bin' / 'python'}\n"
    fake_python(tmp_path / "venv" / "bin" / "python", "3.12")
    refused = find(tmp_path, tmp_path / "venv")
    assert refused.returncode == 1
    assert f"is a venv of Python 3.12 and the project needs 3.11: remove it (rm -rf {tmp_path / 'venv'})" in (
        refused.stderr
    )


def test_precision_sets_tf32_or_ieee_or_autocast_and_puts_torchs_settings_back() -> None:
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    with gpu_model.precision("tf32", torch.device("cpu")):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
        assert not torch.is_autocast_enabled("cpu")
    with gpu_model.precision("bf16", torch.device("cpu")):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert (conv.fp32_precision, matmul.fp32_precision) == before and not torch.is_autocast_enabled("cpu")
