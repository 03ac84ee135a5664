"""``make image``: the bento and its container image, built offline where need be.

    python -m container                 # CPU image: face-attributes:<version>
    python -m container --torch cuda    # GPU image: face-attributes:<version>-cuda

Prints the image's size and what each layer costs; the last line is the image reference.
"""

import argparse
import sys

from container.base import base_image
from container.build import build_bento, containerize
from container.engine import EngineUnavailable, engine
from models.store import store_home

MIB = 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m container", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--torch", choices=("cpu", "cuda"), default="cpu",
                        help="torch build: CPU-only, or CUDA for GPU nodes (default: cpu)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    home = store_home()
    try:
        with engine() as docker:
            print(f"base image: {base_image(docker)}", flush=True)
            bento = build_bento(home)
            print(f"bento: {bento}", flush=True)
            image = containerize(docker, bento, home, torch=options.torch)
    except (EngineUnavailable, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"image size: {image.size / MIB:,.0f} MiB; layers that add bytes, largest first:")
    for layer in sorted(image.layers, key=lambda layer: layer.size, reverse=True):
        print(f"{layer.size / MIB:10,.1f} MiB  {describe(layer.created_by)}")
    print(image.reference)
    return 0


def describe(created_by: str) -> str:
    """A Dockerfile step, shortened: its command without the build arguments docker prefixes."""
    command = created_by.split("/bin/sh -c ", 1)[-1].removeprefix("#(nop) ").removesuffix(" # buildkit")
    return " ".join(command.split())[:100] or "(base image)"


if __name__ == "__main__":
    sys.exit(main())
