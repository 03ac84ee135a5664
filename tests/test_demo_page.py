"""The demo page at /ui in real headless Chromium: a photo in, a box on each face found and 40
bars for the chosen one out, matching the API; 40 bars for the whole image where no face is found."""

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import pytest
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore
from playwright.sync_api import Locator

from harness.faces import face_jpeg
from harness.photos import astronaut, group_photo, overlap
from harness.server import serving
from models.attributes import ATTRIBUTES
from models.store import model_file, read_card, save_model

from .browser import Tab
from .conftest import TrainedModel, copy_home

pytestmark = pytest.mark.slow


def open_demo(tab: Tab, server: str) -> None:
    tab.page.goto(f"{server}/ui")
    tab.page.wait_for_function("document.getElementById('model').textContent.includes(':')")


def bars(tab: Tab) -> list[dict]:
    """Each bar as drawn: name, probability, present, threshold and the fill's width in %."""
    tab.page.locator("#bars li").nth(len(ATTRIBUTES) - 1).wait_for()
    return tab.page.eval_on_selector_all(
        "#bars li",
        """rows => rows.map(row => ({
            name: row.dataset.name,
            probability: Number(row.dataset.probability),
            present: row.classList.contains("present"),
            threshold: Number(row.querySelector(".threshold").dataset.threshold),
            fill: row.querySelector(".fill").getBoundingClientRect().width
                / row.querySelector(".track").getBoundingClientRect().width * 100,
        }))""",
    )


def assert_bars_show(drawn: list[dict], attributes: list[dict], server: str) -> None:
    """The bars drawn are these attributes (as the API answered them), in the API's order."""
    card = httpx.get(f"{server}/metadata").json()
    assert [bar["name"] for bar in drawn] == [a["name"] for a in attributes]  # most probable first
    for bar, answer in zip(drawn, attributes, strict=True):
        assert bar["probability"] == pytest.approx(answer["probability"], abs=1e-5)
        assert bar["present"] == answer["present"]
        assert bar["threshold"] == card["thresholds"][bar["name"]]
        assert bar["fill"] == pytest.approx(100 * answer["probability"], abs=0.5)


def post(server: str, route: str, image: Path) -> dict:
    return httpx.post(f"{server}/{route}", files={"image": (image.name, image.read_bytes())}).json()


def test_an_uploaded_image_gets_a_bar_per_attribute_matching_the_api(
    tab: Tab, server: str, topology: str, tmp_path: Path
) -> None:
    """An aligned synthetic face on which the detector finds nothing: the page says so and shows
    /predict's answer for the whole image."""
    image = tmp_path / "face.jpg"
    image.write_bytes(face_jpeg(34, smiling=True))
    assert post(server, "detect", image)["faces"] == []  # (the detector finds a face in some synthetic ones)
    open_demo(tab, server)
    tab.page.set_input_files("#file", image)
    drawn = bars(tab)

    api = post(server, "predict", image)
    assert_bars_show(drawn, api["attributes"], server)
    assert tab.page.locator("#faces-note").inner_text().startswith("No face found")
    assert tab.page.locator(".boxes .box").count() == 0
    assert tab.page.locator("#model").inner_text() == api["model"]
    assert re.fullmatch(r"\d+ ms \(round trip\)", tab.page.locator("#latency").inner_text())
    assert tab.page.locator("#preview").is_visible()
    assert not tab.console_errors
    assert all(url.startswith((server, "blob:")) for url in tab.requested), "the page must work offline"
    tab.screenshot(f"demo-page-{topology}")


def drawn_boxes(tab: Tab) -> list[dict]:
    """Each face's box as drawn, in the API's pixels: its rect over the preview's, scaled by the
    image's natural size over its displayed size; and whether it is the selected one."""
    return tab.page.eval_on_selector_all(
        ".boxes .box",
        """(boxes) => {
            const image = document.getElementById("preview");
            const shown = image.getBoundingClientRect();
            const [sx, sy] = [image.naturalWidth / shown.width, image.naturalHeight / shown.height];
            return boxes.map(box => {
                const rect = box.getBoundingClientRect();
                return {
                    box: [(rect.left - shown.left) * sx, (rect.top - shown.top) * sy,
                          (rect.right - shown.left) * sx, (rect.bottom - shown.top) * sy],
                    scale: sx,
                    selected: box.classList.contains("selected"),
                };
            });
        }""",
    )


def assert_drawn_over(drawn: dict, box: list[int]) -> None:
    """Within 2 displayed pixels of the API's box."""
    assert drawn["box"] == pytest.approx(box, abs=2 * drawn["scale"])


def test_a_photo_of_one_face_gets_its_box_over_the_face_and_its_bars(
    tab: Tab, server: str, tmp_path: Path
) -> None:
    photo = astronaut()
    image = tmp_path / "astronaut.jpg"
    image.write_bytes(photo.jpeg())
    api = post(server, "detect", image)
    [face] = api["faces"]
    assert overlap(face["box"], photo.faces[0]) > 0.5
    open_demo(tab, server)
    tab.page.set_input_files("#file", image)
    assert_bars_show(bars(tab), face["attributes"], server)
    tab.page.locator(".boxes .box").wait_for()

    for width in (1280, 320):  # two columns, then one narrower one: the box follows the preview
        tab.page.set_viewport_size({"width": width, "height": 900})
        [drawn] = drawn_boxes(tab)
        assert drawn["selected"]
        assert_drawn_over(drawn, face["box"])
    assert tab.page.locator(".boxes .landmark").count() == 5
    assert tab.page.get_by_role("button", name="Face 1").get_attribute("aria-pressed") == "true"
    assert tab.page.locator("#faces-note").is_hidden()
    assert not tab.console_errors


def test_each_face_of_a_group_photo_gets_a_box_and_choosing_one_shows_its_bars(
    tab: Tab, server: str, topology: str, tmp_path: Path
) -> None:
    photo = group_photo(2, 1)
    image = tmp_path / "group.jpg"
    image.write_bytes(photo.jpeg())
    api = post(server, "detect", image)
    faces = api["faces"]
    assert len(faces) == len(photo.faces) == 2 and api["capped"] is None
    assert faces[0]["attributes"] != faces[1]["attributes"]
    open_demo(tab, server)
    tab.page.set_input_files("#file", image)
    assert_bars_show(bars(tab), faces[0]["attributes"], server)
    tab.page.locator(".boxes .box").nth(1).wait_for()
    file_choosers: list = []
    tab.page.on("filechooser", lambda chooser: file_choosers.append(chooser))

    tab.page.locator(".boxes .box").nth(1).click()
    drawn = drawn_boxes(tab)
    assert [box["selected"] for box in drawn] == [False, True]
    for box, face in zip(drawn, faces, strict=True):
        assert_drawn_over(box, face["box"])
    assert_bars_show(bars(tab), faces[1]["attributes"], server)
    assert tab.page.get_by_role("button", name="Face 2").get_attribute("aria-pressed") == "true"
    assert not file_choosers, "a click on a box must not open the file picker"
    tab.screenshot(f"demo-page-faces-{topology}")

    tab.page.get_by_role("button", name="Face 1").focus()  # the same by keyboard
    tab.page.keyboard.press("Enter")
    assert [box["selected"] for box in drawn_boxes(tab)] == [True, False]
    assert_bars_show(bars(tab), faces[0]["attributes"], server)
    assert not tab.console_errors


def test_a_crowd_over_the_face_limit_shows_the_services_capped_note(
    tab: Tab, server: str, tmp_path: Path
) -> None:
    photo = group_photo()  # 20 faces; FACE_ATTRIBUTES_MAX_FACES is 16 by default
    image = tmp_path / "crowd.jpg"
    image.write_bytes(photo.jpeg())
    api = post(server, "detect", image)
    assert (api["faces_found"], len(api["faces"])) == (20, 16) and api["capped"]
    open_demo(tab, server)
    tab.page.set_input_files("#file", image)
    tab.page.locator(".boxes .box").nth(15).wait_for()
    note = tab.page.locator("#faces-note")
    assert note.is_visible() and note.inner_text() == api["capped"]
    assert tab.page.locator(".boxes .box").count() == 16
    assert not tab.console_errors


def test_a_dropped_image_is_classified(tab: Tab, server: str) -> None:
    open_demo(tab, server)
    dropped = tab.page.evaluate_handle(
        """data => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "face.jpg", {type: "image/jpeg"}));
            return transfer;
        }""",
        base64.b64encode(face_jpeg(34)).decode(),
    )
    tab.page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    assert len(bars(tab)) == len(ATTRIBUTES)


def test_a_file_that_is_not_an_image_shows_the_error_instead_of_the_last_answer(
    tab: Tab, server: str, tmp_path: Path
) -> None:
    image, text = tmp_path / "face.jpg", tmp_path / "notes.txt"
    image.write_bytes(face_jpeg(36))
    text.write_text("not an image")
    open_demo(tab, server)
    tab.page.set_input_files("#file", image)
    assert len(bars(tab)) == len(ATTRIBUTES)
    tab.page.set_input_files("#file", text)
    error = tab.page.locator("#error")
    error.wait_for()
    assert "400 invalid_image" in error.inner_text()
    assert tab.page.locator("#bars li").count() == 0  # the face's bars are gone
    assert tab.page.locator("#present").inner_text() == "-"


def test_the_picker_is_emptied_so_the_same_file_can_be_chosen_again(
    tab: Tab, server: str, tmp_path: Path
) -> None:
    """A browser fires no "change" for the file already chosen (say, again after entering the
    token): the page empties the picker once it has read the file."""
    image = tmp_path / "face.jpg"
    image.write_bytes(face_jpeg(37))
    open_demo(tab, server)
    tab.page.set_input_files("#file", image)
    assert len(bars(tab)) == len(ATTRIBUTES)
    assert tab.page.eval_on_selector("#file", "input => input.files.length") == 0


def test_a_trailing_slash_leads_to_the_page(server: str) -> None:
    response = httpx.get(f"{server}/ui/", follow_redirects=True)
    assert response.status_code == 200 and response.url.path == "/ui"
    assert 'src="./ui/assets/ui.js"' in response.text


def synthetic_note(tab: Tab, server: str) -> Locator:
    open_demo(tab, server)  # the card is read, and the note set, before the model's tag is shown
    return tab.page.locator("#synthetic-model")


@pytest.mark.parametrize("topology", ["FaceAttributesOneProcess"], indirect=True)
def test_a_model_trained_on_drawn_faces_is_called_a_demo_above_the_bars(tab: Tab, server: str) -> None:
    note = synthetic_note(tab, server)
    assert httpx.get(f"{server}/metadata").json()["dataset"]["kind"] == "synthetic"
    assert note.is_visible()
    assert "drawn faces" in note.inner_text() and "python -m train --data-dir" in note.inner_text()
    note_box, bars_box = note.bounding_box(), tab.page.locator("#bars").bounding_box()
    assert note_box and bars_box and note_box["y"] + note_box["height"] <= bars_box["y"]


@pytest.fixture(scope="module")
def celeba_model(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose model's card says it learned from CelebA's files: the trained weights, saved
    again with the data set a real CelebA run records (train/datamodule.py's describe)."""
    home = copy_home(trained.home, tmp_path_factory.mktemp("celeba-model") / "home")
    previous = BentoMLContainer.model_store.get()
    BentoMLContainer.model_store.set(ModelStore(home / "models"))
    try:
        trained_model = bentoml.models.get(trained.tag)
        dataset = {"kind": "celeba", "root": "/data/celeba", "layout": "KAGGLE"}
        save_model(
            model_file(trained_model), read_card(trained_model).model_copy(update={"dataset": dataset})
        )
    finally:
        BentoMLContainer.model_store.set(previous)
    with serving("service:FaceAttributesOneProcess", home) as running:
        yield running.url


def test_a_model_trained_on_celeba_gets_no_demo_note(tab: Tab, celeba_model: str) -> None:
    note = synthetic_note(tab, celeba_model)
    assert httpx.get(f"{celeba_model}/metadata").json()["dataset"]["kind"] == "celeba"
    assert note.is_hidden()
