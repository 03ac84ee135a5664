"""Generate a synthetic data set in CelebA's file layouts whose images show their labels.

Each image is a drawn face (178x218 JPEG, like ``img_align_celeba``) whose visible features
encode the ``RENDERED`` attributes, with CelebA-like correlations (only men are bald or
bearded, baldness excludes hair colours and bangs, smiles open the mouth more often) and
variation (position, scale, tilt, skin tone, background, noise). The other attributes
are noise labels drawn at CelebA's prevalence, so a model cannot learn them.

    python -m train.synthetic --out data/synthetic --n 6000 --seed 0
    python -m train.synthetic --out data/celeba-sized --n 202599 --layout original --processes 2

Same arguments, same bytes, however many processes draw them: each image has its own generator
seeded by (seed, index).
"""

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from models.attributes import ATTRIBUTES

WIDTH, HEIGHT = 178, 218
JPEG_QUALITY = 90
METADATA_FILE = "synthetic_metadata.json"
IMAGE_DIR = Path("img_align_celeba") / "img_align_celeba"
# The original release's folders (the Google Drive one): see train/celeba.py.
ORIGINAL_IMAGE_DIR = Path("Img") / "img_align_celeba"
LAYOUTS = ("kaggle", "original")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / val / test, contiguous ids like CelebA's
GENERATOR_VERSION = 1  # bump when the drawing changes, so stale generated sets are remade

RENDERED: tuple[str, ...] = (
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "No_Beard",
    "Pale_Skin",
    "Smiling",
    "Wearing_Hat",
    "Wearing_Lipstick",
)

# Positive rate of each attribute in CelebA; used for the labels that are not drawn.
CELEBA_PREVALENCE: dict[str, float] = {
    "5_o_Clock_Shadow": 0.11, "Arched_Eyebrows": 0.27, "Attractive": 0.51,
    "Bags_Under_Eyes": 0.20, "Big_Lips": 0.24, "Big_Nose": 0.23, "Blurry": 0.05,
    "Bushy_Eyebrows": 0.14, "Chubby": 0.06, "Double_Chin": 0.05, "Heavy_Makeup": 0.39,
    "High_Cheekbones": 0.45, "Narrow_Eyes": 0.12, "Oval_Face": 0.28, "Pointy_Nose": 0.28,
    "Receding_Hairline": 0.08, "Rosy_Cheeks": 0.07, "Sideburns": 0.06,
    "Straight_Hair": 0.21, "Wavy_Hair": 0.32, "Wearing_Earrings": 0.19,
    "Wearing_Necklace": 0.12, "Wearing_Necktie": 0.07, "Young": 0.77,
}  # fmt: skip

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
    skin = PALE_SKIN if spec.pale else other_skin
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


def sample_labels(rng: np.random.Generator) -> tuple[FaceSpec, dict[str, int]]:
    """One face and its 40 labels in CelebA's -1/1 encoding."""
    spec = sample_spec(rng)
    drawn = spec.labels()
    labels = {
        name: (drawn[name] if name in drawn else bool(rng.random() < CELEBA_PREVALENCE[name]))
        for name in ATTRIBUTES
    }
    return spec, {name: 1 if value else -1 for name, value in labels.items()}


def partition_of(index: int, n: int) -> int:
    train_end = round(n * SPLIT_FRACTIONS[0])
    val_end = train_end + round(n * SPLIT_FRACTIONS[1])
    return 0 if index < train_end else 1 if index < val_end else 2


def generate(out: Path, n: int, seed: int, *, layout: str = "kaggle", processes: int = 1) -> None:
    """Write ``n`` images, the attribute and partition files and the metadata file under ``out``,
    in CelebA's Kaggle layout (CSV files) or its original one (text files); ``processes`` draw
    the images in parallel."""
    if n < 10:
        raise ValueError("n must be at least 10 so that every partition has images")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    image_dir = out / (IMAGE_DIR if layout == "kaggle" else ORIGINAL_IMAGE_DIR)
    image_dir.mkdir(parents=True, exist_ok=True)
    draw = partial(_draw_image, image_dir=image_dir, seed=seed)
    if processes > 1:
        with Pool(processes) as pool:
            rows = pool.map(draw, range(n), chunksize=512)
    else:
        rows = list(map(draw, range(n)))
    table = pd.DataFrame(rows, columns=["image_id", *ATTRIBUTES])
    partitions = [partition_of(index, n) for index in range(n)]
    if layout == "kaggle":
        table.to_csv(out / "list_attr_celeba.csv", index=False)
        pd.DataFrame({"image_id": table["image_id"], "partition": partitions}).to_csv(
            out / "list_eval_partition.csv", index=False
        )
    else:
        _write_original_files(out, table.values.tolist(), partitions)
    (out / METADATA_FILE).write_text(json.dumps(metadata_for(n, seed, layout), indent=2) + "\n")


def _draw_image(index: int, image_dir: Path, seed: int) -> dict[str, int | str]:
    """Draw and save image ``index``; its row of the attribute file."""
    rng = np.random.default_rng([seed, index])
    spec, labels = sample_labels(rng)
    image_id = f"{index + 1:06d}.jpg"
    render_face(spec, rng).save(image_dir / image_id, quality=JPEG_QUALITY)
    return {"image_id": image_id, **labels}


def _write_original_files(out: Path, rows: list[list], partitions: Sequence[int]) -> None:
    """``Anno/list_attr_celeba.txt`` and ``Eval/list_eval_partition.txt`` as the original release
    writes them: a count line, a header of the 40 names, then ``000001.jpg -1  1 ...`` rows."""
    (out / "Anno").mkdir(parents=True, exist_ok=True)
    (out / "Eval").mkdir(parents=True, exist_ok=True)
    lines = [f"{len(rows)}\n", " ".join(ATTRIBUTES) + " \n"]
    lines += [f"{row[0]} " + " ".join(f"{int(v):2d}" for v in row[1:]) + "\n" for row in rows]
    (out / "Anno" / "list_attr_celeba.txt").write_text("".join(lines))
    ids = (row[0] for row in rows)
    (out / "Eval" / "list_eval_partition.txt").write_text(
        "".join(f"{i} {p}\n" for i, p in zip(ids, partitions, strict=True))
    )


def metadata_for(n: int, seed: int, layout: str = "kaggle") -> dict:
    """What ``generate(out, n, seed, layout=...)`` records; a folder with other metadata holds
    another set."""
    return {
        "kind": "synthetic",
        "generator_version": GENERATOR_VERSION,
        "n": n,
        "seed": seed,
        "layout": layout,
        "rendered_attributes": list(RENDERED),
    }


def read_metadata(root: Path) -> dict | None:
    """The generator's metadata if ``root`` is a synthetic set, else None (real CelebA)."""
    path = root / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the data set into")
    parser.add_argument("--n", type=int, default=6000, help="number of images (default: 6000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--layout", choices=LAYOUTS, default="kaggle", help="CelebA's file layout (default: kaggle)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="processes drawing images in parallel (default: 1)"
    )
    args = parser.parse_args()
    generate(args.out, args.n, args.seed, layout=args.layout, processes=args.processes)
    print(f"wrote {args.n} images to {args.out}")


if __name__ == "__main__":
    main()
