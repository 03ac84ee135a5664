import csv
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.attributes import ATTRIBUTES
from train.drawing import FaceSpec, render_face, sample_spec
from train.synthetic import IMAGE_DIR, METADATA_FILE, RENDERED, generate, metadata_for

from .conftest import SYNTHETIC_IMAGES


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def read_labels(root: Path) -> dict[str, dict[str, int]]:
    with open(root / "list_attr_celeba.csv") as file:
        return {
            row["image_id"]: {k: int(v) for k, v in row.items() if k != "image_id"}
            for row in csv.DictReader(file)
        }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", n=20, seed=3)
    generate(tmp_path / "b", n=20, seed=3)
    generate(tmp_path / "c", n=20, seed=4)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")


def test_kaggle_layout_with_celeba_sized_jpegs(synthetic_dir: Path) -> None:
    with open(synthetic_dir / "list_attr_celeba.csv") as file:
        header = next(csv.reader(file))
    assert header == ["image_id", *ATTRIBUTES]
    with open(synthetic_dir / "list_eval_partition.csv") as file:
        partitions = [int(row["partition"]) for row in csv.DictReader(file)]
    assert np.bincount(partitions).tolist() == [1600, 200, 200]
    with Image.open(synthetic_dir / IMAGE_DIR / "000001.jpg") as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (178, 218), "RGB")
    labels = read_labels(synthetic_dir)
    assert len(labels) == SYNTHETIC_IMAGES
    assert {v for row in labels.values() for v in row.values()} == {-1, 1}


def test_metadata_lists_the_rendered_attributes(synthetic_dir: Path) -> None:
    metadata = json.loads((synthetic_dir / METADATA_FILE).read_text())
    assert metadata["rendered_attributes"] == list(RENDERED)
    assert len(RENDERED) >= 12 and set(RENDERED) <= set(ATTRIBUTES)
    assert (metadata["n"], metadata["seed"]) == (SYNTHETIC_IMAGES, 7)
    assert metadata == metadata_for(SYNTHETIC_IMAGES, 7)


def test_labels_respect_real_world_exclusions(synthetic_dir: Path) -> None:
    for row in read_labels(synthetic_dir).values():
        if row["Bald"] == 1:
            assert row["Male"] == 1
            assert all(row[c] == -1 for c in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bangs"))
        if row["Male"] == -1:
            assert row["Goatee"] == -1 and row["Mustache"] == -1 and row["No_Beard"] == 1
        assert sum(row[c] == 1 for c in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")) <= 1


def region_mean(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    return float(np.asarray(image.crop(box), dtype=np.float32).mean())


def change_inside_and_outside(
    a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]
) -> tuple[float, float]:
    diff = np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean(axis=2)
    inside = np.zeros(diff.shape, dtype=bool)
    inside[box[1] : box[3], box[0] : box[2]] = True
    return float(diff[inside].mean()), float(diff[~inside].mean())


@pytest.mark.parametrize(
    ("field", "box"),
    [
        ("eyeglasses", (35, 85, 145, 135)),  # the eyes
        ("smiling", (55, 125, 125, 175)),  # the mouth
        ("mouth_open", (55, 125, 125, 175)),
        ("hat", (20, 20, 160, 100)),  # above the forehead
        ("pale", (35, 50, 145, 190)),  # the face
    ],
)
def test_toggling_an_attribute_changes_only_its_region(field: str, box: tuple[int, int, int, int]) -> None:
    spec = replace(sample_spec(np.random.default_rng(0)), bald=False, hat=False, eyeglasses=False,
                   smiling=False, mouth_open=False, pale=False)  # fmt: skip
    with_it = replace(spec, **{field: True})
    without, with_ = (render_face(s, np.random.default_rng(1)) for s in (spec, with_it))
    inside, outside = change_inside_and_outside(without, with_, box)
    assert inside > 1
    assert inside > 10 * outside


def test_hair_colour_labels_match_the_pixels(synthetic_dir: Path) -> None:
    """Averaged over the data set, the hair band of Blond_Hair images is far brighter."""
    brightness: dict[str, list[float]] = {"Blond_Hair": [], "Black_Hair": []}
    for image_id, row in list(read_labels(synthetic_dir).items())[:600]:
        for colour in brightness:
            if row[colour] == 1 and row["Wearing_Hat"] == -1:
                with Image.open(synthetic_dir / IMAGE_DIR / image_id) as image:
                    brightness[colour].append(region_mean(image, (40, 60, 138, 75)))
    assert np.mean(brightness["Blond_Hair"]) > np.mean(brightness["Black_Hair"]) + 30


def test_spec_labels_cover_exactly_the_rendered_attributes() -> None:
    spec = FaceSpec(male=True, bald=False, hair="Gray_Hair", bangs=False, hat=False, eyeglasses=True,
                    smiling=True, mouth_open=False, lipstick=False, mustache=True, beard="goatee",
                    pale=False)  # fmt: skip
    labels = spec.labels()
    assert set(labels) == set(RENDERED)
    assert labels["Gray_Hair"] and labels["Goatee"] and not labels["No_Beard"] and labels["Mustache"]
