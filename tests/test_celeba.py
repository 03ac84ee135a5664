import shutil
from pathlib import Path

import numpy as np
import pytest

from train.celeba import CelebAFormatError, Partition, read_celeba
from train.synthetic import generate


@pytest.fixture(scope="module")
def kaggle_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kaggle-source")
    generate(root, n=30, seed=1)
    return root


@pytest.fixture
def kaggle(kaggle_source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(kaggle_source, tmp_path / "celeba"))


@pytest.fixture
def original(tmp_path: Path) -> Path:
    """The same images and labels as ``kaggle``, in the original release's layout."""
    generate(tmp_path / "original", n=30, seed=1, layout="original")
    return tmp_path / "original"


def test_both_layouts_read_the_same_labels_and_partitions(kaggle: Path, original: Path) -> None:
    a, b = read_celeba(kaggle), read_celeba(original)
    assert (a.layout.name, b.layout.name) == ("kaggle", "original")
    assert a.image_ids == b.image_ids
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.partitions, b.partitions)
    assert set(np.unique(a.labels)) == {0.0, 1.0}


def test_kaggle_layout_also_accepts_a_single_image_folder(kaggle: Path) -> None:
    nested = kaggle / "img_align_celeba" / "img_align_celeba"
    flat = kaggle / "flat"
    nested.rename(flat)
    (kaggle / "img_align_celeba").rmdir()
    flat.rename(kaggle / "img_align_celeba")
    paths, _ = read_celeba(kaggle).split(Partition.TRAIN)
    assert paths[0] == kaggle / "img_align_celeba" / "000001.jpg"


def test_split_follows_the_official_partition(kaggle: Path) -> None:
    celeba = read_celeba(kaggle)
    sizes = [len(celeba.split(p)[0]) for p in Partition]
    assert sizes == [24, 3, 3]
    paths, labels = celeba.split(Partition.TEST)
    assert [p.name for p in paths] == ["000028.jpg", "000029.jpg", "000030.jpg"]
    assert labels.shape == (3, 40)


def rewrite_line(path: Path, line: int, edit) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = edit(lines[line - 1])
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace(",-1", ",0", 1), "list_attr_celeba.csv:5: label .* is not -1 or 1"),
        (lambda s: s.rstrip("\n") + ",1\n", "list_attr_celeba.csv:5: expected 40 labels, found 41"),
        (lambda s: s.rsplit(",", 1)[0] + "\n", "list_attr_celeba.csv:5: expected 40 labels, found 39"),
        (
            lambda s: s.replace("000004.jpg", "999999.jpg"),
            "list_attr_celeba.csv:5: image .*999999.jpg does not exist",
        ),
    ],
)
def test_kaggle_row_errors_name_file_and_line(kaggle: Path, edit, message: str) -> None:
    rewrite_line(kaggle / "list_attr_celeba.csv", 5, edit)
    with pytest.raises(CelebAFormatError, match=message):
        read_celeba(kaggle)


@pytest.mark.parametrize(
    ("line", "edit", "message"),
    [
        (6, lambda s: s.replace(" 1", " 2", 1), "list_attr_celeba.txt:6: label .* is not -1 or 1"),
        (6, lambda s: s.rstrip() + " -1\n", "list_attr_celeba.txt:6: expected 40 labels, found 41"),
        (
            2,
            lambda s: s.replace("Smiling", "Smile"),
            "list_attr_celeba.txt:2: expected the 40 CelebA attribute names",
        ),
        (1, lambda s: "31\n", "list_attr_celeba.txt:1: declares 31 images but lists 30"),
        (1, lambda s: "many\n", "list_attr_celeba.txt:1: expected the image count"),
    ],
)
def test_original_layout_errors_name_file_and_line(original: Path, line: int, edit, message: str) -> None:
    rewrite_line(original / "Anno" / "list_attr_celeba.txt", line, edit)
    with pytest.raises(CelebAFormatError, match=message):
        read_celeba(original)


def test_missing_image_in_the_original_layout_names_its_line(original: Path) -> None:
    (original / "Img" / "img_align_celeba" / "000010.jpg").unlink()
    with pytest.raises(
        CelebAFormatError, match=r"list_attr_celeba.txt:12: image .*000010.jpg does not exist"
    ):
        read_celeba(original)


def test_missing_partition_file_is_named(kaggle: Path) -> None:
    (kaggle / "list_eval_partition.csv").unlink()
    with pytest.raises(CelebAFormatError, match="list_eval_partition.csv: missing"):
        read_celeba(kaggle)


def test_bad_partition_value_names_file_and_line(original: Path) -> None:
    rewrite_line(original / "Eval" / "list_eval_partition.txt", 4, lambda s: s.replace(" 0", " 7"))
    with pytest.raises(CelebAFormatError, match="list_eval_partition.txt:4: expected"):
        read_celeba(original)


def test_image_without_partition_is_reported(kaggle: Path) -> None:
    path = kaggle / "list_eval_partition.csv"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(CelebAFormatError, match="no partition for 1 images, e.g. 000030.jpg"):
        read_celeba(kaggle)


def test_a_folder_that_is_not_celeba_says_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(CelebAFormatError, match="list_attr_celeba.csv .* Anno/list_attr_celeba.txt"):
        read_celeba(tmp_path)
