"""The model alone (bench/gpu_model.py), measured on the CPU with wall time: every measurement's
shape, the JSON the check reads back, and its line of figures."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bench import gpu_model, gpu_timing
from bench.gpu_plan import model_step
from bench.gpu_steps import write_json


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
        assert row["passes"] >= gpu_timing.LEAST_PASSES and row["images_per_s"] > 0
        parts = row["copy_in_ms"] + row["compute_ms"] + row["copy_out_ms"]
        assert 0 < row["compute_ms"] <= parts and row["peak_allocated_mib"] is None  # no CUDA memory here
    first = result["first_passes"]
    assert first["runtime_construct_s"] > 0
    assert list(first["runtime_warm_up_ms"]) == ["1", "2"]  # warmed as the servers warm it
    for kind in ("runtime", "torchscript"):
        assert [row["batch"] for row in first[kind]] == [1, 2]
        assert all(row["first_ms"] > 0 and row["steady_ms"] > 0 for row in first[kind])
    matrix = {(row["precision"], row["layout"]): row for row in result["precision_matrix"]}
    assert set(matrix) == {(p, layout) for p in gpu_timing.PRECISIONS for layout in gpu_timing.LAYOUTS}
    assert all("error" not in row and row["images_per_s"] > 0 for row in matrix.values())
    assert matrix[("fp32", "nchw")]["max_abs_diff"] == 0  # the reference itself
    assert matrix[("fp32", "nhwc")]["max_abs_diff"] < 1e-5
    assert 0 < matrix[("bf16", "nhwc")]["max_abs_diff"] < 0.05  # autocast did run in bf16

    write_json(tmp_path / "model-demo.json", result)  # what the check reads back, and its summary line
    data, figures = model_step("demo", ("tiny", 32), tmp_path / "missing.pt", tmp_path, 1, 60).collect(None)
    assert data == result and figures.startswith("batch 1: ") and figures.endswith(" MiB; untrained")
