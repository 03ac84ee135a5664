"""Face alignment the way CelebA's ``img_align_celeba`` is aligned: five landmarks -> a 178x218 crop.

The models learn from CelebA's aligned crops, where every face's eyes, nose and mouth corners sit
near the same places. A face found in a photo (``serving/inference/detection.py``) is warped with the
similarity transform (rotation, uniform scale, shift) that best moves its five landmarks onto those
places, so it reaches the unchanged preprocessing looking like a training image.

Landmarks are (5, 2) arrays of (x, y) pixel positions, in CelebA's order and sense: left eye,
right eye, nose tip, left mouth corner, right mouth corner, "left" meaning the image's left.
"""

import numpy as np
from PIL import Image

CELEBA_SIZE = (178, 218)  # width, height of an img_align_celeba image
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Where img_align_celeba's landmarks sit on average (CelebA lists them per image in
# list_landmarks_align_celeba.txt): the rounded, level values that CelebA alignment code uses
# (ALAE's, Pidhorskyi et al. 2020). The file itself cannot be downloaded here to average it.
CELEBA_LANDMARKS = np.array([[69.0, 111.0], [108.0, 111.0], [88.0, 136.0], [72.0, 152.0], [105.0, 152.0]])


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix ``[s*R | t]`` that maps ``source`` points closest to ``target`` (least
    squares, Umeyama 1991): a rotation, one scale and a shift, never a reflection or a shear."""
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    covariance = centred_target.T @ centred_source / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])  # no reflection
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / centred_source.var(axis=0).sum()
    shift = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, shift[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through a 2x3 transform."""
    moved: np.ndarray = np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return moved


def align_face(image: Image.Image, landmarks: np.ndarray) -> Image.Image:
    """The 178x218 RGB crop in which ``landmarks`` (this image's pixels) land nearest CelebA's
    mean positions; outside the photo is black, bilinear in between."""
    forward = similarity_transform(landmarks, CELEBA_LANDMARKS)
    linear_inverse = np.linalg.inv(forward[:, :2])
    shift_inverse = -linear_inverse @ forward[:, 2]
    # Landmarks are pixel indices (a pixel's centre is its index); Pillow samples the crop at
    # pixel centres (index + 0.5) in both images, hence the half-pixel terms.
    shift_for_pillow = shift_inverse - linear_inverse @ [0.5, 0.5] + 0.5
    coefficients = (*linear_inverse[0], shift_for_pillow[0], *linear_inverse[1], shift_for_pillow[1])
    # Pillow's convert copies even an RGB image: 87-199 ms for a 12-megapixel photo here, against
    # 15 ms for the warp itself.
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return rgb.transform(
        CELEBA_SIZE, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR
    )
