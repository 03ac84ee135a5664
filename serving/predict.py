"""Every attribute's probability for face image files, without a server.

    python -m serving.predict face.jpg                      # a table per image
    python -m serving.predict --json a.jpg b.png            # JSON: a list, one object per image
    python -m serving.predict --detect group.jpg            # each face in a photo: box, score, present
    python -m serving.predict --model face-attributes:<version> face.jpg

The model comes from the BentoML model store ($BENTOML_HOME, default ~/bentoml): the tag in
$FACE_ATTRIBUTES_MODEL, else face-attributes:latest. Decoding (with the service's pixel limit,
$FACE_ATTRIBUTES_MAX_PIXELS), preprocessing and the TorchScript model are the service's own, so
the probabilities are the ones its /predict answers. With --detect, faces are found, aligned and
classified as /detect does, with its limits ($FACE_ATTRIBUTES_MAX_FACES, largest first, and
$FACE_ATTRIBUTES_DETECTION_SIDE), so the answers are /detect's.
Exit status 2, before any output, when the model or any image is missing or unreadable.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import bentoml
import numpy as np
from pydantic import BaseModel

from models.card import ModelCard
from models.names import DEFAULT_MODEL_TAG
from models.store import ModelUnusableError, load_runtime, read_card, require_model
from serving.errors import ServiceError
from serving.inference.images import faces_in_photo, pixels_from_upload
from serving.inference.predictions import Detection, Prediction, to_detection, to_prediction
from serving.settings import (
    DETECTION_SIDE_ENV,
    MAX_FACES_ENV,
    MAX_PIXELS_ENV,
    MODEL_ENV,
    Settings,
    SettingsError,
)

USAGE_ERROR = 2  # as argparse's own: the command was given something it cannot use
CHUNK = 64  # images (or faces) per forward pass
T = TypeVar("T")


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
        help="print JSON: a list of /predict's (or /detect's) answers, each with its image's path",
    )
    parser.add_argument(
        "--detect",
        action="store_true",
        help="find the faces in each photo and answer each one, as /detect "
        f"(limits: ${MAX_FACES_ENV}, ${DETECTION_SIDE_ENV})",
    )
    return parser


def read_each(paths: Sequence[Path], read: Callable[[bytes], T]) -> tuple[list[T], list[str]]:
    """Each file's contents through ``read`` (its pixels, or its faces'), and one message per file
    that could not be used.

    Every file is tried, so that one run names all the bad ones.
    """
    results, problems = [], []
    for path in paths:
        try:
            results.append(read(path.read_bytes()))
        except OSError as error:
            problems.append(f"{path}: cannot read the file: {error.strerror or error}")
        except ServiceError as error:
            problems.append(f"{path}: {error}")
    return results, problems


def forward(
    runtime: Callable[[np.ndarray], np.ndarray], pixels: Sequence[np.ndarray], attributes: int
) -> np.ndarray:
    """(N, attributes) probabilities, in passes of at most CHUNK images: memory stays flat however
    many files (or faces) are given."""
    passes = [runtime(np.stack(pixels[i : i + CHUNK])) for i in range(0, len(pixels), CHUNK)]
    return np.concatenate(passes) if passes else np.empty((0, attributes), np.float32)


def format_table(image: Path, prediction: Prediction) -> str:
    """One image's prediction for a terminal: a heading, then one row per attribute, most probable first."""
    width = max(len("attribute"), *(len(score.name) for score in prediction.attributes))
    rows = [
        f"  {score.name:<{width}}  {score.probability:>11.4f}  {'yes' if score.present else ''}".rstrip()
        for score in prediction.attributes
    ]
    header = f"  {'attribute':<{width}}  {'probability':>11}  present"
    return "\n".join([f"{image} (model {prediction.model})", header, *rows])


def format_faces(image: Path, detection: Detection) -> str:
    """One photo's faces for a terminal: a heading, then one row per face, largest first."""
    count = len(detection.faces)
    heading = f"{image} (model {detection.model}): {count} face{'' if count == 1 else 's'}"
    boxes = [",".join(map(str, face.box)) for face in detection.faces]
    width = max(len("box"), *map(len, boxes))
    rows = [
        f"  {number:>4}  {box:<{width}}  {face.score:>6.3f}  {', '.join(face.present)}".rstrip()
        for number, (box, face) in enumerate(zip(boxes, detection.faces, strict=True), 1)
    ]
    header = [f"  {'face':>4}  {'box':<{width}}  {'score':>6}  present"] if rows else []
    return "\n".join([heading, *header, *rows, *([f"  {detection.capped}"] if detection.capped else [])])


def format_json(images: Sequence[Path], answers: Sequence[BaseModel]) -> str:
    """Always a list, even for one image, so that scripts parse every run the same way."""
    entries = [{"image": str(image), **a.model_dump()} for image, a in zip(images, answers, strict=True)]
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
    needed = {MODEL_ENV, MAX_PIXELS_ENV} | ({MAX_FACES_ENV, DETECTION_SIDE_ENV} if args.detect else set())
    try:
        settings = Settings.from_env(only=needed)
        # Cheap: checks the file, loads nothing yet.
        model = require_model(args.model or settings.model, f"--model (or {MODEL_ENV})")
    except (SettingsError, ModelUnusableError) as error:
        return fail(parser.prog, [str(error)])
    card = read_card(model)
    if args.detect:
        detections, problems = detect(args.images, model, card, settings)
        tables = (format_faces(i, d) for i, d in zip(args.images, detections, strict=True))
        answers: Sequence[BaseModel] = detections
    else:
        predictions, problems = classify(args.images, model, card, settings)
        tables = (format_table(i, p) for i, p in zip(args.images, predictions, strict=True))
        answers = predictions
    if problems:
        return fail(parser.prog, problems)
    write(format_json(args.images, answers) if args.json else "\n\n".join(tables))
    return 0


def classify(
    paths: Sequence[Path], model: bentoml.Model, card: ModelCard, settings: Settings
) -> tuple[list[Prediction], list[str]]:
    """``/predict``'s answer for each image file; or none, and what was wrong with the files."""
    read = partial(pixels_from_upload, preset=card.preprocessing.preset(), max_pixels=settings.max_pixels)
    pixels, problems = read_each(paths, read)
    if problems:
        return [], problems
    probabilities = forward(load_runtime(model), pixels, len(card.attributes))
    return [to_prediction(p, card, str(model.tag)) for p in probabilities], []


def detect(
    paths: Sequence[Path], model: bentoml.Model, card: ModelCard, settings: Settings
) -> tuple[list[Detection], list[str]]:
    """``/detect``'s answer for each photo (the same detection, alignment and limits; all the
    photos' faces through the model together); or none, and what was wrong with the files."""
    read = partial(
        faces_in_photo,
        preset=card.preprocessing.preset(),
        max_pixels=settings.max_pixels,
        max_faces=settings.max_faces,
        detection_side=settings.detection_side,
    )
    photos, problems = read_each(paths, read)
    if problems:
        return [], problems
    pixels = [face for photo in photos for face in photo.pixels]
    probabilities = forward(load_runtime(model), pixels, len(card.attributes))
    ends = np.cumsum([len(photo.pixels) for photo in photos])[:-1]
    return [
        to_detection(photo, rows, card, str(model.tag))
        for photo, rows in zip(photos, np.split(probabilities, ends), strict=True)
    ], []


if __name__ == "__main__":
    sys.exit(main(prog="python -m serving.predict"))
