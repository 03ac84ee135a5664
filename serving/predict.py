"""Every attribute's probability for face image files, without a server.

    python -m serving.predict face.jpg                      # a table per image
    python -m serving.predict --json a.jpg b.png            # JSON: a list, one object per image
    python -m serving.predict --model face-attributes:<version> face.jpg

The model comes from the BentoML model store ($BENTOML_HOME, default ~/bentoml): the tag in
$FACE_ATTRIBUTES_MODEL, else face-attributes:latest. Decoding (with the service's pixel limit,
$FACE_ATTRIBUTES_MAX_PIXELS), preprocessing and the TorchScript model are the service's own, so
the probabilities are the ones its /predict answers.
Exit status 2, before any output, when the model or any image is missing or unreadable.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.names import DEFAULT_MODEL_TAG
from models.preprocess import FacePreset
from models.store import ModelUnusableError, load_runtime, read_card, require_model
from serving.errors import ServiceError
from serving.images import pixels_from_upload
from serving.predictions import Prediction, to_prediction
from serving.settings import MAX_PIXELS_ENV, MODEL_ENV, Settings, SettingsError

USAGE_ERROR = 2  # as argparse's own: the command was given something it cannot use
CHUNK = 64  # images per forward pass


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="face image files to classify")
    parser.add_argument(
        "--model",
        type=str,
        metavar="TAG",
        help=f"the stored model to use (default: ${MODEL_ENV}, else {DEFAULT_MODEL_TAG})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON: a list of /predict's answers, each with its image's path",
    )
    return parser


def read_pixels(
    paths: Sequence[Path], preset: FacePreset, max_pixels: int
) -> tuple[list[np.ndarray], list[str]]:
    """Each file's preprocessed pixels, and one message per file that could not be used.

    Every file is tried, so that one run names all the bad ones.
    """
    pixels, problems = [], []
    for path in paths:
        try:
            pixels.append(pixels_from_upload(path.read_bytes(), preset, max_pixels))
        except OSError as error:
            problems.append(f"{path}: cannot read the file: {error.strerror or error}")
        except ServiceError as error:
            problems.append(f"{path}: {error}")
    return pixels, problems


def format_table(image: Path, prediction: Prediction) -> str:
    """One image's prediction for a terminal: a heading, then one row per attribute, most probable first."""
    width = max(len("attribute"), *(len(score.name) for score in prediction.attributes))
    rows = [
        f"  {score.name:<{width}}  {score.probability:>11.4f}  {'yes' if score.present else ''}".rstrip()
        for score in prediction.attributes
    ]
    header = f"  {'attribute':<{width}}  {'probability':>11}  present"
    return "\n".join([f"{image} (model {prediction.model})", header, *rows])


def format_json(images: Sequence[Path], predictions: Sequence[Prediction]) -> str:
    """Always a list, even for one image, so that scripts parse every run the same way."""
    entries = [{"image": str(image), **p.model_dump()} for image, p in zip(images, predictions, strict=True)]
    return json.dumps(entries, indent=2)


def write(text: str) -> None:
    """Print ``text``; a reader that stops early (``| head``) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Else Python reports the broken pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def fail(prog: str, problems: Sequence[str]) -> int:
    for problem in problems:
        print(f"{prog}: error: {problem}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """The command; returns its exit status (the console script passes it to ``sys.exit``)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(only={MODEL_ENV, MAX_PIXELS_ENV})
        # Cheap: checks the file, loads nothing yet.
        model = require_model(args.model or settings.model, f"--model (or {MODEL_ENV})")
    except (SettingsError, ModelUnusableError) as error:
        return fail(parser.prog, [str(error)])
    card = read_card(model)
    pixels, problems = read_pixels(args.images, card.preprocessing.preset(), settings.max_pixels)
    if problems:
        return fail(parser.prog, problems)
    runtime = load_runtime(model)
    # Forward passes of at most CHUNK images: memory stays flat however many files are given.
    probabilities = np.concatenate(
        [runtime(np.stack(pixels[i : i + CHUNK])) for i in range(0, len(pixels), CHUNK)]
    )
    predictions = [to_prediction(p, card, str(model.tag)) for p in probabilities]
    if args.json:
        write(format_json(args.images, predictions))
    else:
        write("\n\n".join(format_table(i, p) for i, p in zip(args.images, predictions, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m serving.predict"))
