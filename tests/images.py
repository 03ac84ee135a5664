"""Tiny fixture images for the service tests, drawn by the synthetic generator."""

import io
from dataclasses import replace

import numpy as np
from PIL import Image

from train.synthetic import render_face, sample_spec


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


def face(seed: int, **overrides: object) -> Image.Image:
    """A synthetic face; ``overrides`` set FaceSpec fields (smiling=True, ...)."""
    spec = replace(sample_spec(np.random.default_rng(seed)), **overrides)
    return render_face(spec, np.random.default_rng(seed + 1000))


def face_jpeg(seed: int, **overrides: object) -> bytes:
    return jpeg_bytes(face(seed, **overrides))
