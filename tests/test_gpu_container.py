"""The ``-cuda`` image step of ``make gpu-check`` (bench/gpu_container.py): the device read from
/metadata, and the line of figures the check prints from its JSON."""

from pathlib import Path

from bench.gpu_container import on_cuda, serving_device
from bench.gpu_plan import container_step
from bench.gpu_steps import write_json


def test_the_device_is_read_from_metadata_whichever_way_it_says_it(tmp_path: Path) -> None:
    assert serving_device({"serving": {"device": "cuda", "precision": "tf32"}}) == "cuda"
    devices = {"devices": [{"device": "cuda:0", "name": "H100"}, {"device": "cuda:1"}]}
    assert serving_device(devices) == "cuda:0, cuda:1" and on_cuda(serving_device(devices))
    assert serving_device({"devices": [{"device": "cpu"}]}) == "cpu" and not on_cuda("cpu")
    assert serving_device({"serving": "cuda"}) is None and serving_device(["cuda"]) is None
    assert not on_cuda(None) and not on_cuda("cuda:0, cpu")
    write_json(tmp_path / "container.json", {"serving_device": "cuda:0", "predict_status": 200})
    assert container_step(tmp_path, 60).collect(None)[1] == "/metadata: runs on cuda:0; /predict 200"
