"""Generate a synthetic data set in CelebA's file layouts whose images show their labels.

Each image is a drawn face (``train/drawing.py``; 178x218 JPEG, like ``img_align_celeba``) whose
visible features encode the ``RENDERED`` attributes, with CelebA-like correlations (only men are bald or
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
from functools import partial
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.attributes import ATTRIBUTES
from train.drawing import FaceSpec, render_face, sample_spec

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


def _write_original_files(out: Path, rows: list[list[Any]], partitions: Sequence[int]) -> None:
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


def metadata_for(n: int, seed: int, layout: str = "kaggle") -> dict[str, Any]:
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


def read_metadata(root: Path) -> dict[str, Any] | None:
    """The generator's metadata if ``root`` is a synthetic set, else None (real CelebA)."""
    path = root / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def rendered_attributes(root: Path) -> list[str] | None:
    """The attributes a synthetic set draws; None for real CelebA (all are real)."""
    metadata = read_metadata(root)
    return None if metadata is None else list(metadata["rendered_attributes"])


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
