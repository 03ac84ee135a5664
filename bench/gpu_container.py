"""The ``-cuda`` container image on this host's GPUs, for ``bench.gpu_check`` (its measurement f).

    python -m bench.gpu_container --out runs/gpu-check/container.json

Builds the image as ``make image TORCH=cuda`` does (the store's model: ``BENTOML_HOME``), runs it
with ``docker run --gpus all`` and ``FACE_ATTRIBUTES_DEVICE=cuda`` on a free loopback port, waits
for ``/readyz``, asks ``GET /metadata`` where it runs the model and sends one ``/predict``. Passes
when the server says it runs on CUDA. Where the engine cannot give a container a GPU (no NVIDIA
container toolkit) it says so and exits 77: skipped. The container is removed at the end, also
when the check stops this step (SIGTERM).
"""

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import httpx

from bench.gpu_steps import SKIP_STATUS, write_json
from container.build import build_bento, containerize
from container.engine import Engine, EngineUnavailable, engine
from harness.faces import face_jpeg
from harness.pod import engine_has_gpu
from harness.server import free_port
from models.device import DEVICE_ENV
from models.store import store_home

READY_TIMEOUT_S = 600  # a first start imports torch's CUDA build and loads the model on the GPU


def serving_device(metadata: Any) -> str | None:
    """Where ``/metadata`` says the model runs: its ``serving`` object's ``device``, else the
    ``device`` of each entry of its ``devices`` list; None where it says neither."""
    if not isinstance(metadata, dict):
        return None
    serving = metadata.get("serving")
    if isinstance(serving, dict) and isinstance(serving.get("device"), str):
        return str(serving["device"])
    devices = metadata.get("devices")
    if isinstance(devices, list):
        named = [d["device"] for d in devices if isinstance(d, dict) and isinstance(d.get("device"), str)]
        if named:
            return ", ".join(named)
    return None


def on_cuda(device: str | None) -> bool:
    return device is not None and all(part.strip().startswith("cuda") for part in device.split(","))


def wait_until_ready(docker: Engine, name: str, url: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        running = docker.run("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
        if running != "true":
            raise RuntimeError(f"the container stopped before it was ready:\n{logs(docker, name)}")
        time.sleep(1)
    raise TimeoutError(f"not ready after {READY_TIMEOUT_S} s:\n{logs(docker, name)}")


def logs(docker: Engine, name: str) -> str:
    result = docker.run("logs", "--tail", "60", name, check=False)
    return str(result.stdout + result.stderr)


def check(docker: Engine) -> dict[str, Any]:
    home = store_home()
    image = containerize(docker, build_bento(home), home, torch="cuda")
    print(f"image: {image.reference} ({image.size / 2**20:,.0f} MiB)", flush=True)
    port = free_port()
    name = f"face-attributes-gpu-check-{port}"
    # Host network: a dockerd started by container.engine has no bridge.
    docker.run(
        "run",
        "--detach",
        "--name",
        name,
        "--gpus",
        "all",
        "--network",
        "host",
        "--env",
        "BENTOML_HOST=127.0.0.1",
        "--env",
        f"BENTOML_PORT={port}",
        "--env",
        f"{DEVICE_ENV}=cuda",
        image.reference,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready_s = wait_until_ready(docker, name, url)
        metadata = httpx.get(f"{url}/metadata", timeout=30).json()
        predicted = httpx.post(
            f"{url}/predict", files={"image": ("face.jpg", face_jpeg(0), "image/jpeg")}, timeout=60
        )
        print(logs(docker, name), flush=True)
    finally:
        docker.run("rm", "--force", name, check=False)
    device = serving_device(metadata)
    return {
        "image": image.reference,
        "image_mib": image.size / 2**20,
        "ready_s": ready_s,
        "serving_device": device,
        "metadata_serving": metadata.get("serving") if isinstance(metadata, dict) else None,
        "metadata_devices": metadata.get("devices") if isinstance(metadata, dict) else None,
        "predict_status": predicted.status_code,
        "on_cuda": on_cuda(device) and predicted.status_code == 200,
    }


def skip(reason: str) -> NoReturn:
    print(f"skipped: {reason}", flush=True)
    raise SystemExit(SKIP_STATUS)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args()
    # The check stops a step with SIGTERM: exit through the finally blocks, which remove the container.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with engine() as docker:
            if not engine_has_gpu(docker):
                skip(
                    "this Docker engine cannot give a container a GPU (install the NVIDIA container toolkit)"
                )
            result = check(docker)
    except EngineUnavailable as error:
        skip(f"no Docker engine: {error}")
    write_json(args.out, result)
    device = result["serving_device"] or "nothing (/metadata names no device)"
    print(f"/metadata says the model runs on {device}; /predict answered {result['predict_status']}")
    raise SystemExit(0 if result["on_cuda"] else 1)


if __name__ == "__main__":
    main()
