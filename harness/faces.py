"""Face images to send the service: synthetic faces (the training set's renderer), encoded."""

import io
from dataclasses import replace

import numpy as np
from PIL import Image

from train.drawing import render_face, sample_spec


def face(seed: int, **overrides: object) -> Image.Image:
    """A synthetic face; ``overrides`` set FaceSpec fields (smiling=True, ...)."""
    spec = replace(sample_spec(np.random.default_rng(seed)), **overrides)
    return render_face(spec, np.random.default_rng(seed + 1000))


def face_jpeg(seed: int, **overrides: object) -> bytes:
    return encoded(face(seed, **overrides), "JPEG", quality=90)


def encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()
