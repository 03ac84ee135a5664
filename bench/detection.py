"""What face detection costs: each step of ``/detect`` in one process, and the endpoint over HTTP.

    python -m bench.detection                     # the store's demo model (about 2 minutes)
    python -m bench.detection --seconds 10 --repeats 15 --photos 512 phone

1. In one process, per photo size (``--photos``: scikit-image's astronaut at 512x512, the same
   photo scaled to 1024 and 2048 pixels, a 4000x3000 "phone photo" of it padded with grey, and
   the crowd of 20 of ``harness/photos.py``), each as the service receives it (JPEG):
   milliseconds to decode; to detect (scale to the served ``detection_side``, run dlib's HOG
   detector at ``MIN_SCORE``); for the 68-point landmarks, per face found; to align and
   preprocess, per face answered; for the model's forward pass, per face answered (one pass over
   them all, as the service batches them, with the torch threads the one-process service gives a
   lone request); and the whole path (``faces_in_photo`` and that pass). Medians over
   ``--repeats``, after one untimed pass per photo. Also, once: the time of a process's first
   detection and the resident memory it adds (it loads dlib and its landmark model).
2. Over HTTP, the one-process topology (``service:FaceAttributesOneProcess``) on loopback,
   warmed on both paths (each server process loads dlib on its first ``/detect``): the 512x512
   photo sent to ``/predict`` and to ``/detect`` by 1 and 8 closed-loop clients for ``--seconds``
   each (requests/s, p50/p99 latency, errors, server processes that died during the point,
   server CPU per request, and ``/predict``'s requests/s over ``/detect``'s: the price of
   detection), then the crowd at 1 client on ``/detect`` (faces/s: the faces answered per
   request, at most the served ``max_faces``, times requests/s).
Writes ``detection.json`` and ``detection.md`` into ``--out``; ``make bench`` runs it.
``bench/detectors.py`` measures why this detector.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image

from bench.detectors import GREY
from bench.options import model_parser
from bench.servers import CONFIGURATIONS, Server, process_tree, started
from bench.serving import measure_point
from harness.load import closed_loop, image_uploads
from harness.photos import Photo, astronaut, group_photo, phone_photo, scaled
from models.alignment import align_face
from models.preprocess import FacePreset, to_rgb
from models.runtime import ModelRuntime
from models.store import load_runtime, read_card, require_model, store_home
from serving.inference.detection import MIN_SCORE, at_detection_scale, detect_faces, shape_model_file
from serving.inference.images import decode_image, faces_in_photo
from serving.settings import DETECTION_SIDE_ENV, MAX_FACES_ENV, MAX_PIXELS_ENV, Settings

MIB = 2**20
ONE_PROCESS = next(c for c in CONFIGURATIONS if c.name == "one process")


# The in-process photos, by the name --photos takes.
PHOTOS: dict[str, Callable[[], Photo]] = {
    "512": astronaut,
    "1024": lambda: scaled(astronaut(), 1024),
    "2048": lambda: scaled(astronaut(), 2048),
    "phone": lambda: phone_photo(astronaut()),
    "group": group_photo,
}


def first_detection(detection_side: int) -> dict:
    """The first ``detect_faces`` call of a process, on a blank image: it loads dlib's models."""
    process = psutil.Process()
    before, start = process.memory_info().rss, time.perf_counter()
    detect_faces(Image.new("RGB", (64, 64), GREY), detection_side)
    return {
        "seconds": time.perf_counter() - start,
        "rss_added_mib": (process.memory_info().rss - before) / MIB,
    }


@dataclass(frozen=True)
class Steps:
    """What ``/detect`` runs, loaded once: each step is timed on its own."""

    detector: Any  # dlib's HOG face detector
    shapes: Any  # dlib's 68-point landmark model
    preset: FacePreset
    runtime: ModelRuntime
    threads: int  # torch's threads for a pass, as the one-process service picks for a lone request
    settings: Settings


def one_pass(data: bytes, steps: Steps) -> tuple[dict[str, float], int, int]:
    """Milliseconds of each step for one photo, and how many faces were found and answered."""
    import dlib

    settings = steps.settings
    marks = [time.perf_counter()]
    image = to_rgb(decode_image(data, settings.max_pixels))
    marks.append(time.perf_counter())
    steps.detector.run(np.asarray(at_detection_scale(image, settings.detection_side)[0]), 0, MIN_SCORE)
    marks.append(time.perf_counter())
    faces = detect_faces(image, settings.detection_side)  # untimed: the boxes for the next steps
    pixels = np.asarray(image)
    marks.append(time.perf_counter())
    for left, top, right, bottom in (face.box for face in faces):
        steps.shapes(pixels, dlib.rectangle(left, top, right - 1, bottom - 1))
    marks.append(time.perf_counter())
    answered = faces[: settings.max_faces]
    crops = [steps.preset.to_pixels(align_face(image, face.landmarks)) for face in answered]
    marks.append(time.perf_counter())
    if crops:
        steps.runtime(np.stack(crops), steps.threads)
    marks.append(time.perf_counter())
    found = faces_in_photo(
        data, steps.preset, settings.max_pixels, settings.max_faces, settings.detection_side
    )
    if found.pixels:
        steps.runtime(np.stack(found.pixels), steps.threads)
    marks.append(time.perf_counter())
    decode, detection, _, landmarks, align, forward, whole = (1000 * b - 1000 * a for a, b in pairwise(marks))
    per_face = {
        "landmarks_ms_per_face": landmarks / len(faces) if faces else None,
        "align_preprocess_ms_per_face": align / len(answered) if answered else None,
        "forward_ms_per_face": forward / len(answered) if answered else None,
    }
    timings = {"decode_ms": decode, "detection_ms": detection, "whole_photo_ms": whole}
    timings |= {key: value for key, value in per_face.items() if value is not None}
    return timings, len(faces), len(answered)


def in_process(
    model_tag: str, photos: list[Photo], repeats: int, settings: Settings
) -> tuple[list[dict], int]:
    """Each step of ``/detect`` per photo, as the service runs it (medians over ``repeats``), and
    the torch threads of the forward passes."""
    import dlib  # loaded already, by the first detection

    model = require_model(model_tag, "--model")
    runtime = load_runtime(model)
    steps = Steps(
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(shape_model_file())),
        read_card(model).preprocessing.preset(),
        runtime,
        runtime.lone_image_threads(len(os.sched_getaffinity(0))),
        settings,
    )
    rows = []
    for photo in photos:
        data = photo.jpeg()
        one_pass(data, steps)  # untimed: torch's first passes at a new batch size are slow
        passes = [one_pass(data, steps) for _ in range(repeats)]
        _, found, answered = passes[-1]
        rows.append({
            "photo": photo.name,
            "size": list(photo.image.size),
            "labelled": len(photo.faces),
            "found": found,
            "answered": answered,
            **{key: statistics.median(p[0][key] for p in passes) for key in passes[-1][0]},
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows, steps.threads


def answered_faces(url: str, data: bytes) -> int:
    """How many faces ``/detect`` answers for this photo."""
    response = httpx.post(f"{url}/detect", files={"image": ("photo.jpg", data, "image/jpeg")}, timeout=60)
    response.raise_for_status()
    return len(response.json()["faces"])


def over_http(model_tag: str, portrait: Photo, crowd: Photo, args: argparse.Namespace) -> list[dict]:
    """``/predict`` against ``/detect`` on the same photo, then the crowd on ``/detect``."""
    points = []
    portrait_jpeg, crowd_jpeg = portrait.jpeg(), crowd.jpeg()
    with started(ONE_PROCESS, model_tag, store_home(), [portrait_jpeg], torchserve_batch=1) as server:
        detect = replace(server, path="/detect")
        crowd_server = replace(detect, uploads=image_uploads([crowd_jpeg]))
        # Every server process loads dlib on its first /detect: not in the measured points.
        for warm in (server, detect):
            asyncio.run(closed_loop(warm.url, warm.uploads, 8, args.warmup, warm.path))
        faces = {portrait.name: answered_faces(server.url, portrait_jpeg)}
        faces[crowd.name] = answered_faces(server.url, crowd_jpeg)
        runs: list[tuple[Server, str, int]] = [
            (target, portrait.name, clients) for clients in (1, 8) for target in (server, detect)
        ]
        runs.append((crowd_server, crowd.name, 1))
        for target, photo, clients in runs:
            before = {process.pid for process in process_tree(server.pid)}
            point = measure_point(target, clients, args.seconds)
            # A server process that died (and was restarted) takes its CPU time with it.
            lost = len(before - {process.pid for process in process_tree(server.pid)})
            if lost:
                point["server_cpu_ms_per_request"] = None
            answered = faces[photo] if target.path == "/detect" else 1
            point = {
                "path": target.path,
                "photo": photo,
                "faces_per_request": answered,
                "faces_per_s": point["requests_per_s"] * answered,
                "server_processes_lost": lost,
                **point,
            }
            points.append(point)
            print(json.dumps(point), flush=True)
    for point in points:  # the price of detection: /predict's rate over /detect's, same photo
        if point["path"] == "/detect" and point["photo"] == portrait.name:
            predict = next(
                p for p in points if p["path"] == "/predict" and p["concurrency"] == point["concurrency"]
            )
            point["predict_over_detect"] = predict["requests_per_s"] / point["requests_per_s"]
    return points


def cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    load, settings = result["first_detection"], result["settings"]
    lines = [
        f"In one process: medians of {result['repeats']}; detection on the photo scaled to "
        f"{settings['detection_side']} px on its longer side, dlib HOG at MIN_SCORE {MIN_SCORE}; "
        f"at most {settings['max_faces']} faces answered (aligned, forwarded in one pass on "
        f"{result['threads']} torch thread(s)).",
        "",
        "| photo | pixels | faces found / labelled | decode ms | detection ms | landmarks ms/face "
        "| align + preprocess ms/face | forward ms/face | whole photo ms |",
        "|--|--|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result["in_process"]:
        width, height = row["size"]
        lines.append(
            f"| {row['photo']} | {width}x{height} | {row['found']} / {row['labelled']} "
            f"| {cell(row['decode_ms'])} | {cell(row['detection_ms'])} "
            f"| {cell(row.get('landmarks_ms_per_face'), 2)} "
            f"| {cell(row.get('align_preprocess_ms_per_face'), 2)} "
            f"| {cell(row.get('forward_ms_per_face'), 2)} | {cell(row['whole_photo_ms'])} |"
        )
    lines += [
        "",
        f"The first detection of a process loads dlib's detector and landmark model: "
        f"{load['seconds']:.2f} s, +{load['rss_added_mib']:.0f} MiB RSS.",
        "",
        f"Over HTTP: {result['topology']}, {result['seconds']:g} s per point after "
        f"{result['warmup']:g} s of warm-up per path.",
        "",
        "| path | photo | clients | req/s | faces/s | p50 ms | p99 ms | errors | server processes lost "
        "| server CPU ms/req | /predict req/s over /detect |",
        "|--|--|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in result["http"]:
        lines.append(
            f"| {p['path']} | {p['photo']} | {p['concurrency']} | {p['requests_per_s']:.1f} "
            f"| {p['faces_per_s']:.1f} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['errors']} "
            f"| {p['server_processes_lost']} | {cell(p['server_cpu_ms_per_request'])} "
            f"| {cell(p.get('predict_over_detect'), 2) + 'x' if 'predict_over_detect' in p else ''} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=5, help="seconds per HTTP load point (default: 5)")
    parser.add_argument(
        "--warmup", type=float, default=2, help="seconds of load per path before measuring (default: 2)"
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="in-process repeats per photo; medians (default: 7)"
    )
    parser.add_argument("--photos", nargs="+", choices=list(PHOTOS), default=list(PHOTOS),
                        help="the in-process photos: the astronaut at 512, 1024 and 2048 px, as a "
                        "4000x3000 phone photo, the crowd of 20 (default: all)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench"), help="output folder (default: runs/bench)"
    )
    args = parser.parse_args()
    # As the service reads them (their defaults unless set): the served sizes and limits.
    settings = Settings.from_env(only={DETECTION_SIDE_ENV, MAX_FACES_ENV, MAX_PIXELS_ENV})

    load = first_detection(settings.detection_side)  # first: nothing else has loaded dlib yet
    photos = [PHOTOS[name]() for name in args.photos]
    rows, threads = in_process(args.model, photos, args.repeats, settings)
    points = over_http(args.model, astronaut(), group_photo(), args)
    result = {
        "settings": {
            "detection_side": settings.detection_side,
            "max_faces": settings.max_faces,
            "min_score": MIN_SCORE,
        },
        "repeats": args.repeats,
        "threads": threads,
        "first_detection": load,
        "in_process": rows,
        "topology": ONE_PROCESS.target,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "http": points,
    }
    table = markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection.json").write_text(json.dumps(result, indent=2))
    (args.out / "detection.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
