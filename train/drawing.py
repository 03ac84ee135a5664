"""A drawn face: what it looks like (``FaceSpec``, sampled with CelebA-like correlations) and how
it is drawn (a 178x218 image like ``img_align_celeba``'s, with random placement, size, tilt,
colours and sensor noise). ``train/synthetic.py`` makes data sets of them; tests send them to
the service (``harness/faces.py``).
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 178, 218

HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "Black_Hair": (28, 22, 22),
    "Blond_Hair": (236, 204, 118),
    "Brown_Hair": (112, 70, 38),
    "Gray_Hair": (168, 168, 172),
    "Red": (165, 62, 30),  # a colour CelebA has no attribute for
}
HAIR_COLOUR_WEIGHTS = (0.3, 0.2, 0.28, 0.12, 0.1)
PALE_SKIN = (250, 233, 222)
OTHER_SKINS = ((226, 178, 140), (200, 140, 100), (150, 96, 62), (96, 60, 40))


@dataclass(frozen=True)
class FaceSpec:
    """What one drawn face looks like; the rendered labels follow from it."""

    male: bool
    bald: bool
    hair: str  # a key of HAIR_COLOURS; ignored when bald
    bangs: bool
    hat: bool
    eyeglasses: bool
    smiling: bool
    mouth_open: bool
    lipstick: bool
    mustache: bool
    beard: str  # "none", "goatee" or "full"
    pale: bool

    def labels(self) -> dict[str, bool]:
        hair = None if self.bald else self.hair
        return {
            "Bald": self.bald,
            "Bangs": self.bangs,
            "Black_Hair": hair == "Black_Hair",
            "Blond_Hair": hair == "Blond_Hair",
            "Brown_Hair": hair == "Brown_Hair",
            "Eyeglasses": self.eyeglasses,
            "Goatee": self.beard == "goatee",
            "Gray_Hair": hair == "Gray_Hair",
            "Male": self.male,
            "Mouth_Slightly_Open": self.mouth_open,
            "Mustache": self.mustache,
            "No_Beard": self.beard == "none",
            "Pale_Skin": self.pale,
            "Smiling": self.smiling,
            "Wearing_Hat": self.hat,
            "Wearing_Lipstick": self.lipstick,
        }


def sample_spec(rng: np.random.Generator) -> FaceSpec:
    male = bool(rng.random() < 0.42)
    bald = male and bool(rng.random() < 0.15)
    hat = not bald and bool(rng.random() < 0.15)
    smiling = bool(rng.random() < 0.48)
    return FaceSpec(
        male=male,
        bald=bald,
        hair=str(rng.choice(list(HAIR_COLOURS), p=HAIR_COLOUR_WEIGHTS)),
        bangs=not bald and bool(rng.random() < (0.1 if male else 0.3)),
        hat=hat,
        eyeglasses=bool(rng.random() < 0.2),
        smiling=smiling,
        mouth_open=bool(rng.random() < (0.7 if smiling else 0.25)),
        lipstick=bool(rng.random() < (0.02 if male else 0.7)),
        mustache=male and bool(rng.random() < 0.3),
        beard=str(rng.choice(["none", "goatee", "full"], p=[0.55, 0.2, 0.25])) if male else "none",
        pale=bool(rng.random() < 0.2),
    )


def render_face(spec: FaceSpec, rng: np.random.Generator) -> Image.Image:
    """Draw ``spec`` with random placement, size, tilt, colours and sensor noise."""
    background = tuple(int(v) for v in rng.integers(40, 230, size=3))
    hat_colour = tuple(int(v) for v in rng.integers(0, 256, size=3))  # drawn always: same stream either way
    image = Image.new("RGB", (WIDTH, HEIGHT), background)
    draw = ImageDraw.Draw(image)
    scale = rng.uniform(0.85, 1.1)
    cx = WIDTH / 2 + rng.uniform(-8, 8)
    cy = 122 + rng.uniform(-8, 8)
    rx, ry = 38 * scale, 48 * scale
    other_skin = OTHER_SKINS[int(rng.integers(len(OTHER_SKINS)))]  # drawn always: same stream either way
    skin: tuple[int, ...] = PALE_SKIN if spec.pale else other_skin
    skin = tuple(int(np.clip(c + rng.integers(-8, 9), 0, 255)) for c in skin)
    hair = tuple(int(np.clip(c + rng.integers(-10, 11), 0, 255)) for c in HAIR_COLOURS[spec.hair])

    if not spec.bald:  # hair behind the head: long for women, a short cap for men
        bottom = cy + (1.25 * ry if not spec.male else 0.1 * ry)
        draw.rounded_rectangle(
            (cx - 1.2 * rx, cy - 1.2 * ry, cx + 1.2 * rx, bottom), radius=int(rx), fill=hair
        )
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    if spec.beard == "full":
        beard_colour = hair if not spec.bald else HAIR_COLOURS["Black_Hair"]
        draw.chord((cx - rx, cy - 0.6 * ry, cx + rx, cy + ry), 10, 170, fill=beard_colour)
    if spec.bangs:
        draw.chord((cx - rx, cy - 1.05 * ry, cx + rx, cy - 0.1 * ry), 180, 360, fill=hair)

    eye_y = cy - 0.15 * ry
    for side in (-1, 1):
        ex = cx + side * 0.4 * rx
        draw.ellipse((ex - 7 * scale, eye_y - 4 * scale, ex + 7 * scale, eye_y + 4 * scale), fill="white")
        draw.ellipse(
            (ex - 3 * scale, eye_y - 3 * scale, ex + 3 * scale, eye_y + 3 * scale), fill=(40, 30, 30)
        )
        draw.line(
            (ex - 8 * scale, eye_y - 10 * scale, ex + 8 * scale, eye_y - 11 * scale),
            fill=(60, 40, 30),
            width=2,
        )
        if spec.eyeglasses:
            draw.ellipse(
                (ex - 12 * scale, eye_y - 9 * scale, ex + 12 * scale, eye_y + 9 * scale),
                outline=(15, 15, 20),
                width=3,
            )
    if spec.eyeglasses:
        draw.line(
            (cx - 0.4 * rx + 12 * scale, eye_y, cx + 0.4 * rx - 12 * scale, eye_y), fill=(15, 15, 20), width=3
        )
    draw.line(
        (cx, eye_y + 6 * scale, cx - 4 * scale, cy + 0.25 * ry, cx + 2 * scale, cy + 0.27 * ry),
        fill=(120, 70, 50),
        width=2,
    )

    _draw_mouth(draw, spec, skin, cx, cy + 0.5 * ry, scale)
    facial_hair = hair if not spec.bald else HAIR_COLOURS["Black_Hair"]
    if spec.mustache:
        draw.rounded_rectangle(
            (cx - 13 * scale, cy + 0.27 * ry, cx + 13 * scale, cy + 0.27 * ry + 5 * scale),
            radius=3,
            fill=facial_hair,
        )
    if spec.beard == "goatee":
        draw.ellipse((cx - 8 * scale, cy + 0.72 * ry, cx + 8 * scale, cy + 1.02 * ry), fill=facial_hair)
    if spec.hat:
        top = cy - ry - 22 * scale
        draw.rounded_rectangle(
            (cx - 0.85 * rx, top, cx + 0.85 * rx, cy - 0.6 * ry), radius=8, fill=hat_colour
        )
        draw.rectangle((cx - 1.35 * rx, cy - 0.72 * ry, cx + 1.35 * rx, cy - 0.58 * ry), fill=hat_colour)

    image = image.rotate(float(rng.uniform(-7, 7)), resample=Image.Resampling.BILINEAR, fillcolor=background)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(2, 9), (HEIGHT, WIDTH, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _draw_mouth(
    draw: ImageDraw.ImageDraw, spec: FaceSpec, skin: tuple[int, ...], x: float, y: float, scale: float
) -> None:
    """A smile is wide and curved, a neutral mouth short and straight; open mouths are dark inside."""
    # Bare lips are a darker shade of the skin, so they show on every skin tone.
    lips = (200, 16, 48) if spec.lipstick else tuple(int(c * 0.55) for c in skin)
    width = 4 if spec.lipstick else 3
    inside = (70, 10, 20)
    if spec.smiling and spec.mouth_open:  # a "D" on its back, teeth showing
        box = (x - 16 * scale, y - 10 * scale, x + 16 * scale, y + 10 * scale)
        draw.chord(box, 0, 180, fill=inside, outline=lips, width=width)
        draw.rectangle((x - 11 * scale, y + 1, x + 11 * scale, y + 3 * scale), fill=(245, 245, 240))
    elif spec.smiling:
        draw.arc(
            (x - 19 * scale, y - 20 * scale, x + 19 * scale, y + 8 * scale),
            20,
            160,
            fill=lips,
            width=width + 2,
        )
    elif spec.mouth_open:  # a small "O"
        draw.ellipse(
            (x - 7 * scale, y - 5 * scale, x + 7 * scale, y + 7 * scale),
            fill=inside,
            outline=lips,
            width=width,
        )
    else:
        draw.line((x - 9 * scale, y, x + 9 * scale, y), fill=lips, width=width + 1)
