"""Build the bento and its container image with ``bentoml build`` and ``bentoml containerize``.

The image is tagged ``face-attributes:<bento version>``; ``--torch cuda`` tags it
``face-attributes:<bento version>-cuda``. The CPU image takes torch's CPU build: the host's own
wheel where pip is configured to find one (served to the build over loopback), else PyTorch's CPU
wheel page. The CUDA image takes torch==2.13.0 from the registry as it is, the CUDA build.
"""

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from container.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
BENTOML = str(Path(sys.executable).parent / "bentoml")
TORCH_WHEEL = re.compile(r"torch-2\.13\.0\+cpu-.*\.whl")  # the version pyproject.toml pins
PYTORCH_CPU_WHEELS = "https://download.pytorch.org/whl/cpu/torch/"
# The wheels' address is a build argument, so it is part of the package layer's cache key: a fixed
# port lets a rebuild reuse that layer (1 GB, about a minute) instead of installing it again.
WHEEL_PORT = 47613


@dataclass(frozen=True)
class Layer:
    size: int  # bytes
    created_by: str


@dataclass(frozen=True)
class BuiltImage:
    reference: str  # name:tag
    size: int  # bytes, uncompressed
    layers: tuple[Layer, ...]


def build_bento(home: Path) -> str:
    """``bentoml build`` in the project folder; the new bento's tag, name:version."""
    result = subprocess.run(
        [BENTOML, "build", "--output", "tag"],
        cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)}, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"bentoml build failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")


def containerize(engine: Engine, bento: str, home: Path, *, torch: str = "cpu") -> BuiltImage:
    """``bentoml containerize`` on the host network; the image's size and what each layer costs."""
    reference = bento if torch == "cpu" else f"{bento}-{torch}"
    with torch_wheels(torch) as find_links:
        build_args = [f"--opt=build-arg=UV_FIND_LINKS={find_links}"] if find_links else []
        result = subprocess.run(
            [BENTOML, "containerize", bento, "--image-tag", reference, "--opt=network=host", *build_args],
            # BentoML resolves the bento's Dockerfile template in a temporary copy of the bento and
            # refuses any file outside the working folder: run it where that copy is made.
            cwd=tempfile.gettempdir(),
            env={**os.environ, "BENTOML_HOME": str(home), "PATH": engine.path_first},
            capture_output=True, text=True,
        )  # fmt: skip
    if result.returncode != 0 or not engine.has_image(reference):
        raise RuntimeError(f"bentoml containerize failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return inspect(engine, reference)


def inspect(engine: Engine, reference: str) -> BuiltImage:
    size = int(engine.run("image", "inspect", "--format", "{{.Size}}", reference).stdout)
    history = engine.run("history", "--no-trunc", "--human=false", "--format", "{{json .}}", reference).stdout
    layers = tuple(
        Layer(int(entry["Size"]), entry["CreatedBy"])
        for entry in map(json.loads, history.splitlines())
        if int(entry["Size"]) > 0
    )
    return BuiltImage(reference, size, layers)


@contextmanager
def torch_wheels(torch: str) -> Iterator[str | None]:
    """Where the build finds torch: None for the registry's (CUDA) build, else a CPU wheel's place."""
    if torch == "cuda":
        yield None
        return
    folder = local_cpu_wheel_folder()
    if folder is None:
        yield PYTORCH_CPU_WHEELS
        return
    with serve_folder(folder) as url:
        yield url


def local_cpu_wheel_folder() -> Path | None:
    """A folder in pip's find-links (``pip config``, ``PIP_FIND_LINKS``) holding torch's CPU wheel."""
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    places = re.findall(r"find-links='([^']*)'", configured) + os.environ.get("PIP_FIND_LINKS", "").split()
    for place in (p for entry in places for p in entry.split()):
        folder = Path(place.removeprefix("file://"))
        if folder.is_dir() and any(TORCH_WHEEL.fullmatch(wheel.name) for wheel in folder.glob("*.whl")):
            return folder
    return None


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """The folder's listing over HTTP on 127.0.0.1 for the build's ``uv`` (host network)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEEL_PORT), handler)
    except OSError:  # taken: any free port, at the price of a rebuilt package layer
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
