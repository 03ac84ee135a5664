"""The Swagger UI at / in real headless Chromium: it describes this service, and its
"Try it out" sends real uploads to the real server and shows the answers."""

import json
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, expect

from harness.faces import encoded, face, face_jpeg
from harness.photos import astronaut, overlap
from harness.server import predicted_probabilities
from models.attributes import ATTRIBUTES
from serving.api.edge import UPLOADS

from .browser import Tab

pytestmark = pytest.mark.slow


def open_docs(tab: Tab, server: str) -> None:
    tab.page.goto(f"{server}/")
    tab.page.wait_for_selector(".opblock")  # Swagger UI renders the operations after load


def operation(tab: Tab, path: str) -> Locator:
    return tab.page.locator(".opblock", has=tab.page.locator(f'[data-path="{path}"]'))


def try_it_out(tab: Tab, path: str, files: list[Path]) -> Locator:
    """Expand the operation, "Try it out", choose the files, "Execute"; the operation's block."""
    block = operation(tab, path)
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    for _ in files if UPLOADS[path][1] else files[1:]:  # an array field starts with no item
        block.get_by_role("button", name="Add string item").click()
    inputs = block.locator("input[type=file]")
    expect(inputs).to_have_count(len(files))  # waits for Swagger UI to draw each added item
    for index, file in enumerate(files):
        inputs.nth(index).set_input_files(file)
    block.get_by_role("button", name="Execute").click()
    block.locator(".live-responses-table").wait_for()
    return block


def response_panel(block: Locator) -> tuple[int, object]:
    """The status and the JSON body shown in the operation's "Server response" panel."""
    table = block.locator(".live-responses-table")
    status = int(table.locator("tbody .response-col_status").first.inner_text())
    return status, json.loads(table.locator(".response-col_description pre").first.inner_text())


def as_probabilities(prediction: dict) -> dict[str, float]:
    return {a["name"]: a["probability"] for a in prediction["attributes"]}


def test_the_page_describes_this_service(tab: Tab, server: str) -> None:
    open_docs(tab, server)
    assert "face-attributes" in tab.page.title()
    info = tab.page.locator(".information-container").inner_text()
    assert "Predicts CelebA's 40 face attributes" in info
    assert "Limits" in info and "10 MiB" in info and "32 images" in info
    assert all(name in info for name in ATTRIBUTES)
    assert "created with BentoML" not in tab.page.content()
    assert all(url.startswith(server) for url in tab.requested), "the page must work offline"


def test_every_operation_has_a_summary(tab: Tab, server: str) -> None:
    open_docs(tab, server)
    paths = httpx.get(f"{server}/docs.json").json()["paths"]
    summaries = tab.page.locator(".opblock-summary-description").all_inner_texts()
    assert len(summaries) == sum(len(operations) for operations in paths.values())
    assert all(summary.strip() for summary in summaries)


def test_try_it_out_predict_shows_every_attribute(
    tab: Tab, server: str, topology: str, tmp_path: Path
) -> None:
    image = tmp_path / "face.jpg"
    image.write_bytes(face_jpeg(30))
    open_docs(tab, server)
    block = try_it_out(tab, "/predict", [image])
    status, prediction = response_panel(block)
    assert status == 200
    shown = as_probabilities(prediction)
    assert sorted(shown) == sorted(ATTRIBUTES)
    expected = predicted_probabilities(server, image.read_bytes())
    assert max(abs(shown[name] - expected[name]) for name in ATTRIBUTES) <= 1e-5
    tab.screenshot(f"swagger-predict-{topology}", block)


def test_try_it_out_predict_batch_answers_each_file_in_order(
    tab: Tab, server: str, topology: str, tmp_path: Path
) -> None:
    images = [tmp_path / "a.jpg", tmp_path / "b.png"]
    images[0].write_bytes(face_jpeg(31))
    images[1].write_bytes(encoded(face(32), "PNG"))
    open_docs(tab, server)
    block = try_it_out(tab, "/predict_batch", images)
    status, predictions = response_panel(block)
    assert status == 200 and len(predictions) == 2
    for image, prediction in zip(images, predictions, strict=True):
        shown, expected = as_probabilities(prediction), predicted_probabilities(server, image.read_bytes())
        assert max(abs(shown[name] - expected[name]) for name in ATTRIBUTES) <= 1e-5
    tab.screenshot(f"swagger-predict-batch-{topology}", block)


def test_try_it_out_detect_shows_the_face_in_a_photo(
    tab: Tab, server: str, topology: str, tmp_path: Path
) -> None:
    photo = astronaut()
    image = tmp_path / "astronaut.jpg"
    image.write_bytes(photo.jpeg())
    open_docs(tab, server)
    block = try_it_out(tab, "/detect", [image])
    status, detection = response_panel(block)
    assert status == 200 and detection["faces_found"] == 1
    (found,) = detection["faces"]
    assert overlap(tuple(found["box"]), photo.faces[0]) > 0.5
    assert sorted(as_probabilities(found)) == sorted(ATTRIBUTES)
    tab.screenshot(f"swagger-detect-{topology}", block)


def test_a_bad_file_shows_the_error_in_the_panel(tab: Tab, server: str, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    open_docs(tab, server)
    status, error = response_panel(try_it_out(tab, "/predict", [text]))
    assert status == 400 and error["error"] == "invalid_image"
