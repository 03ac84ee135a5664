"""The optional API token, and what the shipped topology exposes to the network."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from harness.faces import face_jpeg
from harness.server import RunningServer, serving
from models.names import PROTOCOL_MODEL_NAME

from .browser import Tab
from .conftest import TrainedModel

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(trained: TrainedModel) -> Iterator[RunningServer]:
    with serving("service:FaceAttributes", trained.home, env={"FACE_ATTRIBUTES_API_TOKEN": TOKEN}) as running:
        yield running


def predict(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    files = {"image": ("f.jpg", face_jpeg(1), "image/jpeg")}
    return httpx.post(f"{url}/predict", files=files, headers=headers, timeout=60)


@pytest.mark.parametrize(
    "headers",
    [None, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
     {"Authorization": f"Bearer {TOKEN}x"}],
    ids=["none", "wrong", "no-scheme", "basic", "longer"],
)  # fmt: skip
def test_prediction_without_the_right_token_is_401(guarded: RunningServer, headers: dict | None) -> None:
    response = predict(guarded.url, headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"
    assert "FACE_ATTRIBUTES_API_TOKEN" in response.json()["message"]


def test_the_right_token_opens_prediction_and_metadata(guarded: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert predict(guarded.url, headers).status_code == 200
    assert httpx.get(f"{guarded.url}/metadata", headers=headers).status_code == 200
    assert httpx.get(f"{guarded.url}/metadata").status_code == 401


def test_the_token_guards_face_detection_too(guarded: RunningServer) -> None:
    files = {"image": ("f.jpg", face_jpeg(1), "image/jpeg")}
    assert httpx.post(f"{guarded.url}/detect", files=files).status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(f"{guarded.url}/detect", files=files, headers=headers, timeout=60).status_code == 200


def test_the_token_guards_open_inference_protocol_inference_too(guarded: RunningServer) -> None:
    model = f"{guarded.url}/v2/models/{PROTOCOL_MODEL_NAME}"
    assert httpx.get(model).status_code == 401
    assert httpx.post(f"{model}/infer", content=b"{}").status_code == 401
    assert httpx.get(model, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.parametrize(
    "route", ["/livez", "/readyz", "/healthz", "/metrics", "/v2/health/live", "/v2/health/ready"]
)
def test_probes_and_metrics_stay_open(guarded: RunningServer, route: str) -> None:
    assert httpx.get(f"{guarded.url}{route}").status_code == 200


def test_the_schema_declares_the_bearer_scheme(guarded: RunningServer) -> None:
    spec = httpx.get(f"{guarded.url}/docs.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]


def test_only_the_api_port_listens_on_the_network(guarded: RunningServer) -> None:
    """The worker is reached over a Unix socket. Besides the API port, only the process manager's
    own control endpoints (circus, in the `bentoml serve` process) listen, and only on loopback."""
    api_port = int(guarded.url.rsplit(":", 1)[1])
    arbiter = psutil.Process(guarded.pid)
    for process in [arbiter, *arbiter.children(recursive=True)]:
        for connection in process.net_connections(kind="inet"):
            if connection.status != psutil.CONN_LISTEN or connection.laddr.port == api_port:
                continue
            assert process.pid == arbiter.pid, f"{process.cmdline()} listens on {connection.laddr}"
            assert connection.laddr.ip == "127.0.0.1"


@pytest.mark.parametrize("page", ["/", "/ui", "/ui/assets/ui.js", "/docs.json"])
def test_the_pages_stay_open(guarded: RunningServer, page: str) -> None:
    assert httpx.get(f"{guarded.url}{page}").status_code == 200


def test_the_open_schema_reveals_nothing_the_model_card_guards(guarded: RunningServer) -> None:
    card = httpx.get(f"{guarded.url}/metadata", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    schema = httpx.get(f"{guarded.url}/docs.json")
    for private in (card["training_args"]["output_dir"], repr(card["metrics"]["test_macro_auroc"])):
        assert private not in schema.text
    example = schema.json()["paths"]["/metadata"]["get"]["responses"]["200"]["content"]["application/json"]
    assert example["example"]["thresholds"] != card["thresholds"]  # tuned values stay behind the token


def test_the_demo_page_asks_for_the_token(guarded: RunningServer, tab: Tab, tmp_path: Path) -> None:
    tab.page.goto(f"{guarded.url}/ui")
    tab.page.locator("#error", has_text="401 unauthorized").wait_for()  # the model card needs the token
    assert tab.page.locator("#auth").get_attribute("open") is not None
    tab.page.fill("#token", TOKEN)
    image = tmp_path / "face.jpg"
    image.write_bytes(face_jpeg(35))
    tab.page.set_input_files("#file", image)
    tab.page.locator("#bars li").nth(39).wait_for()
    assert tab.page.locator("#error").is_hidden()
    assert (
        tab.page.locator("#model").inner_text()
        == httpx.get(f"{guarded.url}/metadata", headers={"Authorization": f"Bearer {TOKEN}"}).json()["model"]
    )
