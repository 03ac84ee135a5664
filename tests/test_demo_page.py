"""The demo page at /ui in real headless Chromium: an image in, 40 bars out, matching the API."""

import base64
import re
from pathlib import Path

import httpx
import pytest

from harness.faces import face_jpeg
from models.attributes import ATTRIBUTES

from .browser import Tab

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


def test_an_uploaded_image_gets_a_bar_per_attribute_matching_the_api(
    tab: Tab, server: str, topology: str, tmp_path: Path
) -> None:
    image = tmp_path / "face.jpg"
    image.write_bytes(face_jpeg(33, smiling=True))
    open_demo(tab, server)
    tab.page.set_input_files("#file", image)
    drawn = bars(tab)

    api = httpx.post(f"{server}/predict", files={"image": ("face.jpg", image.read_bytes())}).json()
    card = httpx.get(f"{server}/metadata").json()
    assert [bar["name"] for bar in drawn] == [a["name"] for a in api["attributes"]]  # most probable first
    for bar, answer in zip(drawn, api["attributes"], strict=True):
        assert bar["probability"] == pytest.approx(answer["probability"], abs=1e-5)
        assert bar["present"] == answer["present"]
        assert bar["threshold"] == card["thresholds"][bar["name"]]
        assert bar["fill"] == pytest.approx(100 * answer["probability"], abs=0.5)
    assert tab.page.locator("#model").inner_text() == api["model"]
    assert re.fullmatch(r"\d+ ms \(round trip\)", tab.page.locator("#latency").inner_text())
    assert tab.page.locator("#preview").is_visible()
    assert not tab.console_errors
    assert all(url.startswith((server, "blob:")) for url in tab.requested), "the page must work offline"
    tab.screenshot(f"demo-page-{topology}")


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
