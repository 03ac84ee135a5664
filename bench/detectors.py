"""Why this face detector: the candidates' recall, false positives and speed on real photographs.

    python -m bench.detectors                     # every candidate (about 2 minutes on 2 cores)
    python -m bench.detectors --skip-cnn --lfw 20 # the quick ones, on 20 LFW faces and non-faces

A one-off (not part of ``make bench``): it measured the choice ``serving/inference/detection.py`` made.
Candidates, each where importable: dlib's HOG detector (what ``/detect`` serves: no upsampling,
``MIN_SCORE``), the same at dlib's own threshold 0 and with one upsampling (finds smaller faces,
about 4x the time); dlib's CNN (MMOD) detector from the face-recognition-models package (seconds
per photo on a CPU: it runs only on images no longer than ``--cnn-max-side`` pixels, or not at
all with ``--skip-cnn``); OpenCV's Haar cascade where ``cv2`` is installed (it is not a project
dependency; the table says so). For each:

- recall on the labelled photos of ``harness/photos.py`` (the astronaut, Grace Hopper, the
  three-quarter cameraman, the crowd of 20), sent as JPEG and searched at the served
  ``detection_side`` as the service does: a face counts as found when a detection overlaps its
  labelled box with IoU >= 0.5 (each detection counts for one face at most); detections that
  match no label are counted too;
- false positives on the photos with no face (``no_face_photos()``);
- recall on scikit-image's LFW subset (the first ``--lfw`` of its 100 faces, 25x25 grey crops,
  each upscaled bicubic to 100x100 and pasted in the middle of a 160x160 grey canvas, found at
  IoU >= 0.5 with the pasted square) and the non-faces (the first ``--lfw`` of its other 100)
  with any detection;
- milliseconds per 512x512 photo (the astronaut), median of ``--repeats``.
Writes ``detectors.json`` and ``detectors.md`` into ``--out``.
"""

import argparse
import importlib.util
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.photos import (
    Box,
    Photo,
    astronaut,
    cameraman,
    grace_hopper,
    group_photo,
    no_face_photos,
    overlap,
)
from models.preprocess import to_rgb
from serving.inference.detection import MIN_SCORE, at_detection_scale, shape_model_file
from serving.inference.images import decode_image
from serving.settings import DETECTION_SIDE_ENV, MAX_PIXELS_ENV, Settings

MATCH_IOU = 0.5
CNN_MODEL = "mmod_human_face_detector.dat"  # beside the landmark model, in face_recognition_models
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
LFW_FACES = 100  # skimage.data.lfw_subset(): 100 faces, then 100 non-faces
LFW_CROP, LFW_CANVAS = 100, 160
GREY = (128, 128, 128)
LFW_BOX = ((LFW_CANVAS - LFW_CROP) // 2,) * 2 + ((LFW_CANVAS + LFW_CROP) // 2,) * 2

Detect = Callable[[np.ndarray], list[Box]]  # RGB pixels -> face boxes (left, top, right, bottom)


@dataclass(frozen=True)
class Candidate:
    name: str
    make: Callable[[], Detect] | None  # None: not installed
    max_side: int | None = None  # runs only on images no longer than this


def dlib_box(rectangle: Any) -> Box:
    """A dlib rectangle (inclusive corners) as a box whose right and bottom are exclusive."""
    return (rectangle.left(), rectangle.top(), rectangle.right() + 1, rectangle.bottom() + 1)


def hog(upsample: int, threshold: float) -> Callable[[], Detect]:
    def make() -> Detect:
        import dlib

        detector = dlib.get_frontal_face_detector()
        return lambda pixels: [dlib_box(r) for r in detector.run(pixels, upsample, threshold)[0]]

    return make


def cnn() -> Detect:
    import dlib

    model = dlib.cnn_face_detection_model_v1(str(shape_model_file().parent / CNN_MODEL))
    return lambda pixels: [dlib_box(found.rect) for found in model(pixels, 0)]


def haar() -> Detect:
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + HAAR_CASCADE)

    def detect(pixels: np.ndarray) -> list[Box]:
        grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5)
        return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found]

    return detect


def candidates(skip_cnn: bool, cnn_max_side: int) -> list[Candidate]:
    found = [
        Candidate(f"dlib HOG, upsample 0, score >= {MIN_SCORE} (served)", hog(0, MIN_SCORE)),
        Candidate("dlib HOG, upsample 0, score >= 0 (dlib's default)", hog(0, 0.0)),
        Candidate(f"dlib HOG, upsample 1, score >= {MIN_SCORE}", hog(1, MIN_SCORE)),
        Candidate("dlib HOG, upsample 1, score >= 0", hog(1, 0.0)),
    ]
    if not skip_cnn:
        found.append(Candidate("dlib CNN (MMOD), upsample 0", cnn, cnn_max_side))
    cv2_here = importlib.util.find_spec("cv2") is not None
    found.append(Candidate(f"OpenCV Haar cascade ({HAAR_CASCADE})", haar if cv2_here else None))
    return found


def matched(detections: list[Box], labels: list[Box]) -> tuple[int, int]:
    """Labelled faces found (IoU >= 0.5; a detection counts for one face at most), and the
    detections left that match no labelled face."""
    left = list(detections)
    found = 0
    for label in labels:
        best = max(left, key=lambda box: overlap(box, label), default=None)
        if best is not None and overlap(best, label) >= MATCH_IOU:
            left.remove(best)
            found += 1
    return found, len(left)


def as_served(photo: Photo, detection_side: int, max_pixels: int) -> tuple[np.ndarray, float]:
    """The photo as ``/detect`` receives it (JPEG, decoded) at the detector's scale."""
    image, scale = at_detection_scale(to_rgb(decode_image(photo.jpeg(), max_pixels)), detection_side)
    return np.asarray(image), scale


def lfw_canvases(count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first ``count`` LFW faces and non-faces, each upscaled and centred on grey."""
    from skimage import data

    crops = data.lfw_subset()

    def canvas(crop: np.ndarray) -> np.ndarray:
        grey = Image.fromarray(np.round(crop * 255).astype(np.uint8))
        image = Image.new("RGB", (LFW_CANVAS, LFW_CANVAS), GREY)
        image.paste(grey.resize((LFW_CROP, LFW_CROP), Image.Resampling.BICUBIC).convert("RGB"), LFW_BOX[:2])
        return np.asarray(image)

    return [canvas(c) for c in crops[:count]], [canvas(c) for c in crops[LFW_FACES : LFW_FACES + count]]


@dataclass(frozen=True)
class TestSet:
    labelled: list[tuple[Photo, np.ndarray, float]]  # the photo, its pixels as searched, their scale
    no_faces: list[tuple[Photo, np.ndarray, float]]
    lfw_faces: list[np.ndarray]
    lfw_non_faces: list[np.ndarray]
    timing: np.ndarray  # a 512x512 photo


def evaluate(candidate: Candidate, detect: Detect, tests: TestSet, repeats: int) -> dict:
    def runs(pixels: np.ndarray) -> bool:
        return candidate.max_side is None or max(pixels.shape[:2]) <= candidate.max_side

    def in_photo(pixels: np.ndarray, scale: float) -> list[Box]:
        """Boxes in the full-size photo's pixels, where its labels are."""
        return [
            (round(left / scale), round(top / scale), round(right / scale), round(bottom / scale))
            for left, top, right, bottom in detect(pixels)
        ]

    photos = {}
    for photo, pixels, scale in tests.labelled:
        if runs(pixels):
            found, unmatched = matched(in_photo(pixels, scale), photo.faces)
            photos[photo.name] = {"found": found, "labelled": len(photo.faces), "unmatched": unmatched}
        else:
            photos[photo.name] = None
    no_faces = [len(detect(pixels)) for _, pixels, _ in tests.no_faces if runs(pixels)]
    lfw_faces = [matched(detect(pixels), [LFW_BOX])[0] for pixels in tests.lfw_faces if runs(pixels)]
    lfw_flagged = [bool(detect(pixels)) for pixels in tests.lfw_non_faces if runs(pixels)]
    timings = []
    if runs(tests.timing):
        for _ in range(repeats):
            start = time.perf_counter()
            detect(tests.timing)
            timings.append(1000 * (time.perf_counter() - start))
    return {
        "detector": candidate.name,
        "installed": True,
        "photos": photos,
        "no_face_photos": {
            "false_positives": sum(no_faces), "photos": len(no_faces), "of": len(tests.no_faces),
        },
        "lfw_faces": {"found": sum(lfw_faces), "of": len(lfw_faces)},
        "lfw_non_faces": {"flagged": sum(lfw_flagged), "of": len(lfw_flagged)},
        "ms_per_512_photo": statistics.median(timings) if timings else None,
    }  # fmt: skip


def partly(count: str, ran: int, of: int) -> str:
    """A count over the photos a detector ran on, saying so when that is not all of them."""
    if ran == 0:
        return "not run"
    return count if ran == of else f"{count} (on {ran} of {of} photos)"


def markdown(result: dict) -> str:
    names = result["labelled_photos"]
    lines = [
        f"Photos as JPEG, searched at {result['detection_side']} px on the longer side; a face is "
        f"found at IoU >= {MATCH_IOU} with its labelled box. LFW: {result['lfw']} faces and "
        f"{result['lfw']} non-faces (25 px crops upscaled to {LFW_CROP} px on a {LFW_CANVAS} px canvas).",
        "",
        "| detector | " + " | ".join(names) + " | unmatched detections on those | false positives on "
        f"{len(result['no_face_photos'])} no-face photos | LFW faces found | LFW non-faces flagged "
        "| ms per 512x512 photo |",
        "|--|" + "--:|" * (len(names) + 5),
    ]
    for row in result["detectors"]:
        if not row["installed"]:
            cells = ["not installed (not a project dependency)"] + ["-"] * (len(names) + 4)
        else:
            ran = [p for p in row["photos"].values() if p is not None]
            cells = [
                "not run" if p is None else f"{p['found']}/{p['labelled']}" for p in row["photos"].values()
            ]
            unmatched = str(sum(p["unmatched"] for p in ran))
            fp = row["no_face_photos"]
            cells += [
                partly(unmatched, len(ran), len(names)),
                partly(str(fp["false_positives"]), fp["photos"], fp["of"]),
                f"{row['lfw_faces']['found']}/{row['lfw_faces']['of']}",
                f"{row['lfw_non_faces']['flagged']}/{row['lfw_non_faces']['of']}",
                "not run" if row["ms_per_512_photo"] is None else f"{row['ms_per_512_photo']:.0f}",
            ]
        lines.append(f"| {row['detector']} | " + " | ".join(cells) + " |")
    for row in result["detectors"]:
        if row["installed"] and (None in row["photos"].values() or row["ms_per_512_photo"] is None):
            lines += ["", f"{row['detector']}: only on images up to {row['max_side']} px on the longer side."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per detector, median (default: 5)")
    parser.add_argument("--lfw", type=int, default=LFW_FACES, choices=range(1, LFW_FACES + 1),
                        metavar="N", help="LFW faces, and non-faces, searched (default: 100)")  # fmt: skip
    parser.add_argument("--skip-cnn", action="store_true", help="leave dlib's CNN detector out")
    parser.add_argument("--cnn-max-side", type=int, default=640,
                        help="the CNN runs only on images no longer than this: seconds per photo on a "
                        "CPU (default: 640, which leaves out the crowd and the galaxy field)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()
    settings = Settings.from_env(only={DETECTION_SIDE_ENV, MAX_PIXELS_ENV})
    side, max_pixels = settings.detection_side, settings.max_pixels

    labelled = [astronaut(), grace_hopper(), cameraman(), group_photo()]
    faces, non_faces = lfw_canvases(args.lfw)
    tests = TestSet(
        [(photo, *as_served(photo, side, max_pixels)) for photo in labelled],
        [(photo, *as_served(photo, side, max_pixels)) for photo in no_face_photos()],
        faces,
        non_faces,
        as_served(astronaut(), side, max_pixels)[0],
    )
    rows = []
    for candidate in candidates(args.skip_cnn, args.cnn_max_side):
        if candidate.make is None:
            row = {"detector": candidate.name, "installed": False}
        else:
            row = {
                **evaluate(candidate, candidate.make(), tests, args.repeats),
                "max_side": candidate.max_side,
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "detection_side": side,
        "lfw": args.lfw,
        "labelled_photos": [photo.name for photo in labelled],
        "no_face_photos": [photo.name for photo, _, _ in tests.no_faces],
        "detectors": rows,
    }
    table = markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detectors.json").write_text(json.dumps(result, indent=2))
    (args.out / "detectors.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
