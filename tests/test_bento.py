"""``bentoml build`` -> serve the bento; ``bentoml export`` -> ``import`` into a fresh store -> serve."""

import os
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from container.build import build_bento
from harness.faces import face_jpeg
from harness.server import BENTOML, ROOT, serving

from .conftest import TrainedModel, copy_home

pytestmark = pytest.mark.slow


def bentoml_cli(home: Path, *args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [BENTOML, *args], cwd=cwd, env={**os.environ, "BENTOML_HOME": str(home)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def assert_serves(target: str, home: Path, cwd: Path) -> None:
    with serving(target, home, cwd=cwd) as running:
        response = httpx.post(
            f"{running.url}/predict", files={"image": ("f.jpg", face_jpeg(3), "image/jpeg")}, timeout=60
        )
        assert response.status_code == 200
        assert len(response.json()["attributes"]) == 40
        for page in ("/", "/ui", "/ui/assets/ui.js"):  # the pages' files travel with the code
            assert httpx.get(f"{running.url}{page}").status_code == 200


@pytest.fixture(scope="module")
def built(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = copy_home(trained.home, tmp_path_factory.mktemp("build") / "home")
    return home, build_bento(home)


def test_build_embeds_the_model_and_only_serving_code(built: tuple[Path, str], trained: TrainedModel) -> None:
    home, tag = built
    name, version = tag.split(":")
    bento = home / "bentos" / name / version
    manifest = (bento / "bento.yaml").read_text()
    assert f"tag: {trained.tag}" in manifest
    source = bento / "src"
    assert (source / "service.py").is_file() and (source / "models" / "network.py").is_file()
    assert (source / "web" / "ui.html").is_file()
    shipped = {path.relative_to(source) for path in (source / "serving").rglob("*.py")}
    assert shipped == {path.relative_to(ROOT) for path in (ROOT / "serving").rglob("*.py")}
    for absent in ("train", "exporters", "harness", "bench", "tests", "deploy"):
        assert not (source / absent).exists(), f"the bento ships {absent}/"
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.13.0" in requirements and "lightning" not in requirements


def test_the_built_bento_serves(built: tuple[Path, str], tmp_path: Path) -> None:
    home, tag = built
    assert_serves(tag, home, cwd=tmp_path)  # away from the project: only the bento's code


def test_export_import_round_trip_into_a_fresh_store(built: tuple[Path, str], tmp_path: Path) -> None:
    home, tag = built
    archive = tmp_path / "face-attributes.bento"
    bentoml_cli(home, "export", tag, str(archive))
    fresh = tmp_path / "fresh-home"
    bentoml_cli(fresh, "import", str(archive))
    assert tag in bentoml_cli(fresh, "list")
    assert_serves(tag, fresh, cwd=tmp_path)


def test_the_bento_describes_a_gpu_ready_image(built: tuple[Path, str], trained: TrainedModel) -> None:
    home, tag = built
    bento = home / "bentos" / tag.replace(":", "/")
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["entry_service"] == "face-attributes"
    services = {s["name"]: s for s in manifest["services"]}
    assert services["face-attributes"]["dependencies"] == [{"service": "AttributeClassifier"}]
    assert services["AttributeClassifier"]["config"]["resources"] == {"gpu": 1}
    assert {m["tag"] for s in services.values() for m in s["models"]} == {trained.tag}
    # The registry's torch 2.13.0 for Linux x86_64 is the CUDA build: no CPU index, no +cpu tag.
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert (
        "torch==2.13.0\n" in requirements and "+cpu" not in requirements and "index-url" not in requirements
    )
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "EXPOSE 3000" in dockerfile
    assert dockerfile.rindex("USER bentoml") > dockerfile.rindex("RUN ")  # everything after runs non-root
    assert "ENTRYPOINT" in dockerfile.split("USER bentoml")[-1]


def test_the_bentocloud_config_names_the_bentos_services(built: tuple[Path, str]) -> None:
    home, tag = built
    manifest = yaml.safe_load((home / "bentos" / tag.replace(":", "/") / "bento.yaml").read_text())
    config = yaml.safe_load((ROOT / "deploy" / "bentocloud.yaml").read_text())
    assert set(config["services"]) == {service["name"] for service in manifest["services"]}
    assert config["bento"].split(":")[0] == manifest["name"]
