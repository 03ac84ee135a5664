"""Faces in a photo: a box, five landmarks and a score for each, from dlib, offline.

dlib's HOG face detector finds upright, roughly frontal faces; its 68-point shape predictor
(``face-recognition-models``, installed from the package registry: nothing is downloaded at run
time) gives the five points CelebA annotates. Chosen over OpenCV's cascades, which give no
landmarks, and dlib's CNN detector, which took 3 s per 512x512 photo here (``docs/api.md``,
"Which detector", has the measured recall and false positives of each).

The detector runs on a copy scaled down to ``detection_side`` pixels on its longer side (its
cost grows with the pixel count; it finds faces from about 55 pixels wide at that scale); the
landmarks are then placed on the full-size image. dlib releases the GIL while it works, so
detection in a worker thread leaves the event loop free.
"""

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

# In the 68-point scheme: the eyes' contours (averaged to their centres), the nose tip and the
# mouth's outer corners, as the image shows them left to right: CelebA's five points.
LEFT_EYE, RIGHT_EYE, NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = range(36, 42), range(42, 48), 30, 48, 54
SHAPE_MODEL = "shape_predictor_68_face_landmarks.dat"
# dlib's own threshold is 0. Measured: the mission patch on the astronaut's suit
# (skimage.data.astronaut) scores 0.0-0.26 as JPEG at quality 60-95, the real faces here 1.1-1.7;
# of scikit-image's 100 LFW faces (25 px, upscaled: blurry) 0 finds 95 and 0.3 finds 88.
MIN_SCORE = 0.3
_loaded: dict[str, tuple[Any, Any, Any]] = {}  # dlib's objects (it has no type hints)
_loading = threading.Lock()
# dlib's detector keeps its image pyramid in the object: two threads in it at once corrupt the
# heap (seen here: wrong boxes, then "free(): corrupted unsorted chunks"). One photo at a time per
# process, its landmarks included; the processes (one per core) still detect in parallel.
_detecting = threading.Lock()


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[int, int, int, int]  # left, top, right, bottom in the image's pixels, inside it
    landmarks: np.ndarray  # (5, 2): models.alignment's order, the image's pixels
    score: float  # the detector's margin: over MIN_SCORE is answered, higher is surer

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return (right - left) * (bottom - top)


def shape_model_file() -> Path:
    """The landmark model inside the installed ``face_recognition_models`` package; found without
    importing it (its ``__init__`` needs setuptools' ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face detection needs the face-recognition-models package: pip install it")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / SHAPE_MODEL


def _dlib_models() -> tuple[Any, Any, Any]:
    """dlib's detector, landmark model and rectangle type, loaded once per process on first use
    (about 1-2 s and 80 MiB: a service that is never asked for faces never pays it)."""
    with _loading:
        if not _loaded:
            import dlib

            _loaded["models"] = (
                dlib.get_frontal_face_detector(),
                dlib.shape_predictor(str(shape_model_file())),
                dlib.rectangle,
            )
    return _loaded["models"]


def at_detection_scale(image: Image.Image, detection_side: int) -> tuple[Image.Image, float]:
    """The copy the detector searches (no larger than ``detection_side`` on its longer side, never
    enlarged), and its scale."""
    if max(image.size) <= detection_side:
        return image, 1.0
    small = ImageOps.contain(image, (detection_side, detection_side), Image.Resampling.BILINEAR)
    return small, small.width / image.width


def detect_faces(image: Image.Image, detection_side: int) -> list[DetectedFace]:
    """Every face found in an RGB image, largest first."""
    detector, shapes, rectangle = _dlib_models()
    pixels = np.asarray(image)
    small, scale = at_detection_scale(image, detection_side)
    with _detecting:
        found, scores, _ = detector.run(pixels if small is image else np.asarray(small), 0, MIN_SCORE)
        # Back in the photo's pixels (dlib's right and bottom are inclusive).
        boxes = [
            tuple(round(v / scale) for v in (r.left(), r.top(), r.right() + 1, r.bottom() + 1)) for r in found
        ]
        outlines = [
            shapes(pixels, rectangle(left, top, right - 1, bottom - 1)) for left, top, right, bottom in boxes
        ]
    faces = [
        DetectedFace(_inside(box, image.size), _celeba_points(outline), float(score))
        for box, outline, score in zip(boxes, outlines, scores, strict=True)
    ]
    # Largest first; faces of one size top to bottom, then left to right, so the order is stable.
    return sorted(faces, key=lambda face: (-face.area, face.box[1], face.box[0]))


def _inside(box: tuple[int, ...], size: tuple[int, int]) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    return max(0, left), max(0, top), min(size[0], right), min(size[1], bottom)


def _celeba_points(outline: Any) -> np.ndarray:
    """CelebA's five points from dlib's 68."""
    points = np.array([[outline.part(i).x, outline.part(i).y] for i in range(outline.num_parts)], float)
    eyes = [points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)]
    return np.stack([*eyes, points[NOSE_TIP], points[MOUTH_LEFT], points[MOUTH_RIGHT]])
