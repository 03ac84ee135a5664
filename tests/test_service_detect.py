"""``POST /detect`` on the real service (both topologies): every face in a real photograph, each
aligned like CelebA and classified through the same batches as ``/predict``."""

import asyncio
import io
from pathlib import Path

import bentoml
import httpx
import pytest
from PIL import Image

from harness.faces import encoded, face_jpeg
from harness.metrics import batch_counters
from harness.photos import Photo, astronaut, group_photo, no_face_photos, overlap
from models.alignment import align_face
from models.attributes import ATTRIBUTES
from serving.inference.detection import detect_faces
from serving.settings import MAX_FACES_ENV

pytestmark = pytest.mark.slow


def detect(url: str, data: bytes, field: str = "image") -> httpx.Response:
    return httpx.post(f"{url}/detect", files={field: ("photo.jpg", data, "image/jpeg")}, timeout=60)


def probabilities(scored: dict) -> dict[str, float]:
    return {a["name"]: a["probability"] for a in scored["attributes"]}


def test_a_portrait_gives_its_face_with_box_landmarks_score_and_attributes(server: str) -> None:
    photo = astronaut()
    answer = detect(server, photo.jpeg()).json()
    assert answer["model"].startswith("face-attributes:")
    assert (answer["faces_found"], answer["capped"]) == (1, None)
    (found,) = answer["faces"]
    assert overlap(tuple(found["box"]), photo.faces[0]) > 0.5
    assert set(found["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert found["score"] > 0
    assert sorted(probabilities(found)) == sorted(ATTRIBUTES)
    assert found["present"] == [a["name"] for a in found["attributes"] if a["present"]]


def test_each_face_is_classified_as_predict_classifies_its_aligned_crop(server: str) -> None:
    """The aligned crop goes through the unchanged preprocessing and model: /predict on that crop
    (sent losslessly) answers the same probabilities."""
    photo = astronaut()
    data = photo.jpeg()
    (found,) = detect(server, data).json()["faces"]
    decoded = Image.open(io.BytesIO(data)).convert("RGB")  # the photo as the server decodes it
    (local,) = detect_faces(decoded, 1024)
    crop = encoded(align_face(decoded, local.landmarks), "PNG")
    predicted = httpx.post(f"{server}/predict", files={"image": ("crop.png", crop)}, timeout=60).json()
    assert probabilities(found) == pytest.approx(probabilities(predicted), abs=1e-5)


@pytest.mark.parametrize("photo", no_face_photos()[:2], ids=lambda p: p.name)
def test_a_photo_without_a_face_gives_an_empty_list(server: str, photo: Photo) -> None:
    answer = detect(server, photo.jpeg()).json()
    assert (answer["faces"], answer["faces_found"], answer["capped"]) == ([], 0, None)


def test_a_crowd_is_capped_at_the_limit_largest_first_and_names_the_limit(server: str) -> None:
    photo = group_photo()  # 20 faces; the default limit is 16
    answer = detect(server, photo.jpeg()).json()
    assert (answer["faces_found"], len(answer["faces"])) == (20, 16)
    assert MAX_FACES_ENV in answer["capped"] and "20 faces found" in answer["capped"]
    boxes = [tuple(f["box"]) for f in answer["faces"]]
    assert all(max(overlap(box, label) for label in photo.faces) > 0.5 for box in boxes)
    areas = [(right - left) * (bottom - top) for left, top, right, bottom in boxes]
    assert areas == sorted(areas, reverse=True)


def test_the_faces_of_one_photo_share_one_forward_pass(server: str) -> None:
    """Each photo of two faces adds one to (images - passes) when its faces share a pass, none when
    they go one by one. The server is shared: others' passes may land between the readings, but
    a pass of n images only adds n - 1 >= 0, so they can never take from what these photos add."""
    photos = 3
    images_before, passes_before = batch_counters(server)
    for _ in range(photos):
        assert len(detect(server, group_photo(2, 1).jpeg()).json()["faces"]) == 2
    images_after, passes_after = batch_counters(server)
    assert images_after - images_before >= 2 * photos
    assert (images_after - images_before) - (passes_after - passes_before) >= photos


def test_concurrent_photos_faces_and_uploads_each_get_their_own_answer(server: str) -> None:
    """Strangers' faces and images share batches: each caller still gets exactly its answer, and a
    bad upload fails only its own request."""
    photos = [astronaut().jpeg(), group_photo(2, 1).jpeg()]
    faces = [face_jpeg(seed) for seed in (40, 41)]
    alone = [detect(server, data).json() for data in photos]
    predicted = [httpx.post(f"{server}/predict", files={"image": ("f.jpg", d)}).json() for d in faces]

    async def everyone() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server, timeout=60) as client:
            requests = [client.post("/detect", files={"image": ("p.jpg", d)}) for d in photos * 3]
            requests += [client.post("/predict", files={"image": ("f.jpg", d)}) for d in faces * 3]
            requests.append(client.post("/detect", files={"image": ("bad.jpg", b"not an image")}))
            return await asyncio.gather(*requests)

    answers = asyncio.run(everyone())
    for answer, expected in zip(answers[:6], alone * 3, strict=True):
        got = answer.json()
        assert [f["box"] for f in got["faces"]] == [f["box"] for f in expected["faces"]]
        for mine, theirs in zip(got["faces"], expected["faces"], strict=True):
            assert probabilities(mine) == pytest.approx(probabilities(theirs), abs=1e-5)
    for answer, expected in zip(answers[6:12], predicted * 3, strict=True):
        assert probabilities(answer.json()) == pytest.approx(probabilities(expected), abs=1e-5)
    assert answers[12].status_code == 400 and answers[12].json()["error"] == "invalid_image"


@pytest.mark.parametrize(
    ("data", "field", "status", "error"),
    [(b"not an image", "image", 400, "invalid_image"), (face_jpeg(1), "images", 400, "bad_request"),
     (b"%PDF-1.7 ...", "image", 415, "unsupported_image_format")],
    ids=["not-an-image", "wrong-field", "pdf"],
)  # fmt: skip
def test_bad_uploads_get_the_same_errors_as_predict(
    server: str, data: bytes, field: str, status: int, error: str
):
    response = detect(server, data, field)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert set(response.json()) == {"error", "message"}


def test_the_python_client_calls_detect(server: str, tmp_path: Path) -> None:
    image = tmp_path / "astronaut.jpg"
    image.write_bytes(astronaut().jpeg())
    with bentoml.SyncHTTPClient(server) as client:
        answer = client.detect(image=image)
    assert answer["faces_found"] == 1 and len(answer["faces"][0]["attributes"]) == 40
