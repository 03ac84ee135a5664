"""A TorchServe model archive (.mar) from a stored model, with the project's own preprocessing.

    python -m models.torchserve --out model-store              # the store's face-attributes:latest
    torchserve --start --model-store model-store --models face_attributes=face_attributes.mar

The archive holds the stored ``model.pt`` (byte for byte), the model card, the handler
(``models/torchserve_handler.py``) and the ``models`` package it imports, so TorchServe decodes
and preprocesses exactly as the BentoML service does. Needs ``torch-model-archiver``.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bentoml

from models.oip import MODEL_NAME
from models.store import MODEL_FILE, read_card, require_model, served_model_tag
from models.torchserve_handler import CARD_FILE

PACKAGE = Path(__file__).parent
ARCHIVER = str(Path(sys.executable).parent / "torch-model-archiver")


def export_torchserve(model: bentoml.Model, out: Path) -> Path:
    """Write ``out/face_attributes.mar``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        shutil.copyfile(model.path_of(MODEL_FILE), work / "model.pt")
        (work / CARD_FILE).write_text(read_card(model).model_dump_json())
        # The archiver copies a folder's contents, not the folder: wrap the package in one.
        shutil.copytree(PACKAGE, work / "package" / "models", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(
            [ARCHIVER, "--model-name", MODEL_NAME, "--version", model.tag.version or "1",
             "--serialized-file", str(work / "model.pt"), "--handler", str(PACKAGE / "torchserve_handler.py"),
             "--extra-files", f"{work / CARD_FILE},{work / 'package'}", "--export-path", str(out), "--force"],
            check=True,
        )  # fmt: skip
    return out / f"{MODEL_NAME}.mar"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the TorchServe model store folder to write to"
    )
    parser.add_argument(
        "--model", default=served_model_tag(), help="model tag in the store (default: face-attributes:latest)"
    )
    args = parser.parse_args()
    print(f"TorchServe archive: {export_torchserve(require_model(args.model), args.out)}")


if __name__ == "__main__":
    main()
