"""`make bench` stays runnable: both benchmarks, shortened, on the test model and data."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.server import ROOT
from harness.torchserve import java_missing

pytestmark = pytest.mark.slow


def run_module(module: str, *args: str, home: Path) -> str:
    """Its standard output; fails the test with its output's end if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, "BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_serving_benchmark_measures_beside_torchserve_and_writes_its_table_and_plot(
    trained, tmp_path: Path
) -> None:
    if java_missing():
        pytest.skip("TorchServe needs Java 17 (`java` is not on PATH)")
    args = ["--model", trained.tag, "--models", "demo", "--seconds", "1", "--warmup", "0.5"]
    args += [
        "--concurrency",
        "1",
        "32",
        "--configurations",
        "one process",
        "TorchServe",
        "--out",
        str(tmp_path),
    ]
    output = run_module("bench.serving", *args, home=trained.home)
    result = json.loads((tmp_path / "serving.json").read_text())["demo"]
    for server in ("one process", "TorchServe"):
        points = result["runs"][server]
        assert [p["concurrency"] for p in points] == [1, 32]
        assert all(p["requests"] > 0 and p["errors"] == 0 and p["p50_ms"] <= p["p99_ms"] for p in points)
        assert all(p["server_cpu_ms_per_request"] > 0 and p["rss_mib"] > 100 for p in points)
    assert result["runs"]["one process"][0]["mean_batch_size"] == 1.0  # one client never has company
    assert result["in_process_limit"]["64"]["images_per_s"] > 0
    table = (tmp_path / "serving.md").read_text()
    assert "| one process | 32 |" in table and "| TorchServe | 32 |" in table
    assert (tmp_path / "serving.png").read_bytes().startswith(b"\x89PNG")
    ours, theirs = result["runs"]["one process"][1], result["runs"]["TorchServe"][1]
    line = output.strip().splitlines()[-1]  # the last line, for scripts: req/s and RSS ratios
    assert re.fullmatch(r"vs TorchServe: demo one-process c=32 [0-9.]+x c=64 n/a rss [0-9.]+x", line)
    assert line.split()[5] == f"{ours['requests_per_s'] / theirs['requests_per_s']:.2f}x"


def test_memory_benchmark_breaks_down_imports_and_each_process(trained, tmp_path: Path) -> None:
    args = ["--model", trained.tag, "--configurations", "split", "--seconds", "1", "--out", str(tmp_path)]
    run_module("bench.memory", *args, home=trained.home)
    result = json.loads((tmp_path / "memory.json").read_text())
    steps = {step["step"]: step for step in result["imports"]}
    assert steps["torch"]["added_mib"] > 50 > steps["the service definitions (service.py)"]["added_mib"]
    roles = sorted(p["process"] for p in result["processes"])
    assert roles == [
        "BentoML worker: AttributeClassifier",
        "BentoML worker: face-attributes",
        "bentoml serve (process manager)",
    ]
    assert all(p["rss_mib"] >= p["uss_mib"] > 0 for p in result["processes"])
    assert "| split | **whole tree** |" in (tmp_path / "memory.md").read_text()


def test_training_benchmark_compares_the_loop_with_raw_compute(synthetic_dir: Path, tmp_path: Path) -> None:
    args = ["--data-dir", str(synthetic_dir), "--steps", "3", "--num-workers", "0", "--out", str(tmp_path)]
    run_module("bench.training", *args, home=tmp_path)
    modes = {m["data"]: m for m in json.loads((tmp_path / "training.json").read_text())["modes"]}
    assert (modes["streaming"]["loaders"], modes["preloaded"]["loaders"]) == (0, 0)  # --num-workers 0
    for mode in modes.values():
        assert mode["raw_images_per_s"] > 0 and mode["loop_images_per_s"] > 0
        assert mode["loop/raw"] == pytest.approx(mode["loop_images_per_s"] / mode["raw_images_per_s"])
    assert "| preloaded | 0 |" in (tmp_path / "training.md").read_text()


def test_celeba_sized_benchmark_measures_start_up_loaders_and_memory(tmp_path: Path) -> None:
    from train.synthetic import generate

    generate(tmp_path / "celeba", n=400, seed=0, layout="original")
    args = ["--root", str(tmp_path / "celeba"), "--loader-images", "64", "--sample-every", "1",
            "--batch-size", "16", "--out", str(tmp_path)]  # fmt: skip
    run_module("bench.celeba_sized", *args, home=tmp_path)
    result = json.loads((tmp_path / "celeba_sized.json").read_text())
    assert result["annotations"]["images"] == 400 and result["annotations"]["layout"] == "original"
    assert set(result["loader_images_per_s"]) == {"1", "2", "4"}
    assert all(rate > 0 for rate in result["loader_images_per_s"].values())
    samples = result["epoch"]["samples"]
    assert [s["batch"] for s in samples] == list(range(20))  # 320 training images, 16 a batch
    assert all(s["training_mib"] > 50 and s["loaders_mib"] > 0 for s in samples)
    assert "| read the annotation files |" in (tmp_path / "celeba_sized.md").read_text()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA device is present")
def test_gpu_check_stops_at_once_without_cuda(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.startswith("gpu-check: no CUDA device here (torch 2.13.0")
    assert result.stdout.strip().endswith("nothing checked") and not (tmp_path / "out").exists()
