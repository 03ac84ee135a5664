"""A TorchServe model archive (.mar) from a stored model, with the service's own decoding.

    python -m exporters.torchserve --out model-store         # the store's face-attributes:latest
    torchserve --start --model-store model-store --models face_attributes=face_attributes.mar

The archive holds the stored ``model.pt`` (byte for byte), the model card, the handler
(``exporters/torchserve_handler.py``) and the project's modules it imports, found by following
its imports (``models/``, ``serving/inference/images.py`` and what that needs; no HTTP layer), so TorchServe
decodes and preprocesses exactly as the BentoML service does. Needs ``torch-model-archiver``.
"""

import modulefinder
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bentoml

from exporters.command import run_export
from exporters.torchserve_handler import CARD_FILE
from models.names import PROTOCOL_MODEL_NAME
from models.store import model_file, read_card

ROOT = Path(__file__).resolve().parent.parent
HANDLER = Path(__file__).resolve().parent / "torchserve_handler.py"
ARCHIVER = str(Path(sys.executable).parent / "torch-model-archiver")


PACKED = ("models", "serving")  # the packages whose modules the handler may need


def handler_sources() -> list[Path]:
    """The project's files the handler imports, directly or not, relative to the project root."""
    finder = modulefinder.ModuleFinder(path=[str(ROOT)])  # only the project's own modules resolve
    finder.run_script(str(HANDLER))
    files = {
        Path(file).resolve()
        for name, module in finder.modules.items()
        if name.split(".")[0] in PACKED and (file := module.__file__)  # type: ignore[attr-defined]  # not in typeshed
    }
    return sorted(file.relative_to(ROOT) for file in files)


def export_torchserve(model: bentoml.Model, out: Path) -> Path:
    """Write ``out/face_attributes.mar``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        shutil.copyfile(model_file(model), work / "model.pt")
        (work / CARD_FILE).write_text(read_card(model).model_dump_json())
        # The archiver copies a folder's contents, not the folder: the modules go in one.
        for source in handler_sources():
            (work / "package" / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / source, work / "package" / source)
        subprocess.run(
            [ARCHIVER, "--model-name", PROTOCOL_MODEL_NAME, "--version", model.tag.version or "1",
             "--serialized-file", str(work / "model.pt"), "--handler", str(HANDLER),
             "--extra-files", f"{work / CARD_FILE},{work / 'package'}", "--export-path", str(out), "--force"],
            check=True,
        )  # fmt: skip
    return out / f"{PROTOCOL_MODEL_NAME}.mar"


def main() -> None:
    run_export(
        "python -m exporters.torchserve",
        __doc__,
        "the TorchServe model store folder to write to",
        export_torchserve,
        "TorchServe archive",
    )


if __name__ == "__main__":
    main()
