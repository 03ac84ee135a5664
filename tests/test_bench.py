"""`make bench` stays runnable: both benchmarks, shortened, on the test model and data."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.server import ROOT
from harness.torchserve import java_missing

from .needs import unavailable
from .test_service_balance import cpu_count_workers

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
        unavailable("TorchServe needs Java 17 (`java` is not on PATH)")
    args = ["--model", trained.tag, "--models", "demo", "--seconds", "1", "--warmup", "0.5"]
    args += ["--settle", "0.3", "--rounds", "2"]
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
        assert all(p["rounds"] == 2 for p in points)  # the servers took turns, twice each
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
    assert roles == [  # the split: an API process per core, its worker, their manager
        "BentoML worker: AttributeClassifier",
        *["BentoML worker: face-attributes"] * cpu_count_workers(),
        "bentoml serve (process manager)",
    ]
    assert all(p["rss_mib"] >= p["uss_mib"] > 0 and p["rss_quiet_mib"] > 0 for p in result["processes"])
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


def markdown_rows(output: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the printed Markdown table whose first header is ``first_header``, each as
    {header: cell}."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    headers = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(headers, (cell.strip() for cell in line.strip("|").split("|")), strict=True)))
    return rows


def test_detection_benchmark_times_each_step_and_prices_detect_against_predict(
    trained, tmp_path: Path
) -> None:
    args = ["--model", trained.tag, "--seconds", "0.5", "--warmup", "0.3", "--repeats", "1",
            "--photos", "512", "group", "--out", str(tmp_path)]  # fmt: skip
    output = run_module("bench.detection", *args, home=trained.home)
    steps = {row["photo"]: row for row in markdown_rows(output, "photo")}
    assert list(steps) == ["astronaut", "group_of_20"]
    assert steps["astronaut"]["faces found / labelled"] == "1 / 1"
    assert steps["group_of_20"]["faces found / labelled"] == "20 / 20"
    for row in steps.values():
        timed = [value for header, value in row.items() if header.endswith(("ms", "ms/face"))]
        assert len(timed) == 6 and all(float(value) > 0 for value in timed), row
    assert re.search(r"loads dlib's detector and landmark model: [0-9.]+ s, \+[0-9]+ MiB RSS", output)

    result = json.loads((tmp_path / "detection.json").read_text())
    assert result["first_detection"]["seconds"] > 0 and result["first_detection"]["rss_added_mib"] > 10
    points = result["http"]
    assert [(p["path"], p["photo"], p["concurrency"]) for p in points] == [
        ("/predict", "astronaut", 1),
        ("/detect", "astronaut", 1),
        ("/predict", "astronaut", 8),
        ("/detect", "astronaut", 8),
        ("/detect", "group_of_20", 1),
    ]
    for point in points:
        assert point["requests"] > 0 and point["errors"] == 0 and point["p50_ms"] <= point["p99_ms"]
        assert point["server_processes_lost"] == 0, "a server process died under /detect"
    crowd = points[-1]  # the served limit: the 16 largest of its 20 faces
    assert crowd["faces_per_request"] == 16
    assert crowd["faces_per_s"] == pytest.approx(16 * crowd["requests_per_s"])
    assert points[1]["predict_over_detect"] > 1  # detection is never free
    http = markdown_rows(output, "path")
    assert len(http) == 5
    for row in http:
        assert float(row["req/s"]) > 0 and float(row["faces/s"]) > 0 and row["errors"] == "0", row
    assert (tmp_path / "detection.md").read_text() in output


def test_detectors_benchmark_compares_recall_false_positives_and_speed(tmp_path: Path) -> None:
    from serving.inference.detection import MIN_SCORE

    args = ["--lfw", "3", "--repeats", "1", "--cnn-max-side", "160", "--out", str(tmp_path)]
    output = run_module("bench.detectors", *args, home=tmp_path)
    rows = {row["detector"]: row for row in markdown_rows(output, "detector")}
    served = rows[f"dlib HOG, upsample 0, score >= {MIN_SCORE} (served)"]
    assert (served["astronaut"], served["grace_hopper"], served["group_of_20"]) == ("1/1", "1/1", "20/20")
    assert served["unmatched detections on those"] == "0"
    assert served["false positives on 5 no-face photos"] == "0"
    assert re.fullmatch(r"[0-3]/3", served["LFW faces found"]) and served["LFW non-faces flagged"] == "0/3"
    for name, row in rows.items():
        if name.startswith("dlib HOG"):
            assert float(row["ms per 512x512 photo"]) > 0, row
    cnn = rows["dlib CNN (MMOD), upsample 0"]  # only on what fits --cnn-max-side: the LFW canvases
    assert cnn["astronaut"] == "not run" and re.fullmatch(r"[0-3]/3", cnn["LFW faces found"])
    haar = next(row for name, row in rows.items() if name.startswith("OpenCV Haar"))
    assert haar["astronaut"].startswith("not installed") == (importlib.util.find_spec("cv2") is None)
    assert (tmp_path / "detectors.md").read_text() in output


def worktrees() -> list[str]:
    listed = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True)
    return listed.stdout.splitlines()


def test_interleaved_benchmark_serves_a_git_ref_beside_the_working_tree(trained, tmp_path: Path) -> None:
    before = worktrees()
    args = ["--base", "HEAD", "--model", trained.tag, "--clients", "1", "2", "--rounds", "2",
            "--seconds", "0.5", "--warmup", "0.2", "--out", str(tmp_path)]  # fmt: skip
    output = run_module("bench.interleaved", *args, home=trained.home)
    results = json.loads((tmp_path / "interleaved.json").read_text())
    assert [r["clients"] for r in results] == [1, 2]
    for result in results:
        for version in ("base", "working tree"):
            assert len(result["rounds"][version]) == 2
            assert all(r["requests_per_s"] > 0 and r["errors"] == 0 for r in result["rounds"][version])
        assert 0 <= result["working_tree_p50_lower_in"] <= 2
    rows = markdown_rows(output, "clients")
    assert [(row["clients"], row["version"]) for row in rows] == [
        ("1", "base"), ("1", "working tree"), ("2", "base"), ("2", "working tree")
    ]  # fmt: skip
    assert rows[1]["p50 lower (rounds)"].endswith("of 2")
    assert worktrees() == before, "the base's worktree was left behind"
