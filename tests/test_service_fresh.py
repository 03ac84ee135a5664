"""A server of this module's own per topology, watched from its very start: what readiness means,
which model version it serves, that it loads the face detector only when asked for faces, and
/metrics counts that no other test's requests can disturb.

Its store holds two versions of the model, the trained one and a newer copy of it (the store's
latest), and it serves the older one, chosen with FACE_ATTRIBUTES_MODEL. The processes that load
the model are held (SIGSTOP) as they start, so that what the server answers while its model
loads is seen whatever the machine's speed, then let go.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bentoml
import httpx
import psutil
import pytest
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore

from harness.faces import face_jpeg
from harness.metrics import answered_requests, batch_counters
from harness.photos import astronaut
from harness.server import BENTOML, ROOT, free_port, stop
from models.attributes import ATTRIBUTES
from models.names import DEFAULT_MODEL_TAG
from models.store import model_file, read_card, save_model
from serving.settings import MODEL_ENV

from .conftest import TOPOLOGIES, TrainedModel, copy_home
from .test_service_balance import cpu_count_workers

pytestmark = pytest.mark.slow

DLIB_LIBRARY = "_dlib_pybind11"  # the dlib-bin wheel's extension module: mapped once dlib is imported
DEADLINE_S = 120  # only a server that is stuck takes this long to start
NO_ANSWER = "no answer"  # the connection was accepted and nothing answered within the timeout
# The service whose "Service <name> initialized" line says the model is loaded and warmed up.
MODEL_SERVICE = {"FaceAttributes": "AttributeClassifier", "FaceAttributesOneProcess": "face-attributes"}


@dataclass(frozen=True)
class FreshServer:
    url: str
    pid: int
    topology: str
    served: str  # the version FACE_ATTRIBUTES_MODEL names: the older of the two
    latest: str  # the store's latest: the newer
    while_loading: tuple[int, str] | str  # /readyz while the model's processes were held
    first_predict: httpx.Response  # sent as soon as /readyz first answered 200
    dlib_before_detect: dict[int, bool]  # per serving process, after /predict and /predict_batch


def loads_the_model(process: psutil.Process, topology: str) -> bool:
    """The split's inference worker, or any of the one-process workers."""
    command = process.cmdline()
    return "AttributeClassifier" in command if topology == "FaceAttributes" else "--worker-id" in command


def has_dlib(process: psutil.Process) -> bool:
    return any(DLIB_LIBRARY in mapped.path for mapped in process.memory_maps())


def serving_processes(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if "--worker-id" in p.cmdline()]


def hold_as_they_start(process: subprocess.Popen, topology: str, count: int) -> list[psutil.Process]:
    """Stop each process that loads the model as soon as it exists, until ``count`` are held."""
    held: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(held) < count:
        assert process.poll() is None, "the server exited as it started"
        assert time.monotonic() < deadline, f"{len(held)} of {count} model processes started"
        for child in psutil.Process(process.pid).children(recursive=True):
            try:
                if child.pid not in held and loads_the_model(child, topology):
                    child.suspend()
                    held[child.pid] = child
            except psutil.Error:  # gone, or not yet the command it will run
                continue
        time.sleep(0.01)
    return list(held.values())


def readyz(url: str, timeout: float) -> tuple[int, str] | str | None:
    """/readyz's status and error code (or, for a body that is not JSON, its text), NO_ANSWER, or
    None where nothing listens on the port yet."""
    try:
        response = httpx.get(f"{url}/readyz", timeout=timeout)
    except httpx.ConnectError:
        return None
    except httpx.TimeoutException:
        return NO_ANSWER
    if response.status_code < 400:
        return response.status_code, ""
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.status_code, response.json()["error"]
    return response.status_code, response.text


def answer_while_held(url: str, topology: str) -> tuple[int, str] | str:
    """The first answer of /readyz once the port is open. The split's API process may take its
    probe of the worker (5 s) to answer; nothing will answer in one process while its workers are
    held, so a second tells."""
    deadline = time.monotonic() + DEADLINE_S
    while (answer := readyz(url, timeout=8 if topology == "FaceAttributes" else 1)) is None:
        assert time.monotonic() < deadline, f"nothing listens on {url} after {DEADLINE_S} s"
        time.sleep(0.05)
    return answer


def wait_until_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while readyz(url, timeout=2) != (200, ""):
        assert process.poll() is None, "the server exited"
        assert time.monotonic() < deadline, f"not ready after {DEADLINE_S} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def two_versions(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the trained model's store with a second, newer version of the same model in it;
    the newer one's tag."""
    home = copy_home(trained.home, tmp_path_factory.mktemp("two-versions") / "home")
    previous = BentoMLContainer.model_store.get()
    BentoMLContainer.model_store.set(ModelStore(home / "models"))
    try:
        older = bentoml.models.get(trained.tag)
        newer = save_model(model_file(older), read_card(older))
        assert str(bentoml.models.get(DEFAULT_MODEL_TAG).tag) == str(newer.tag) != trained.tag
    finally:
        BentoMLContainer.model_store.set(previous)
    return home, str(newer.tag)


@pytest.fixture(scope="module", params=TOPOLOGIES)
def fresh(
    request: pytest.FixtureRequest,
    trained: TrainedModel,
    two_versions: tuple[Path, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FreshServer]:
    """The server, started here and watched from its start; what only a fresh server shows is
    recorded before any test sends it anything."""
    topology = request.param
    folder = tmp_path_factory.mktemp(f"fresh-{topology}")
    home = copy_home(two_versions[0], folder / "home")
    log = folder / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [BENTOML, "serve", f"service:{topology}", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "BENTOML_HOME": str(home), MODEL_ENV: trained.tag},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    held: list[psutil.Process] = []
    try:
        held = hold_as_they_start(
            process, topology, 1 if topology == "FaceAttributes" else cpu_count_workers()
        )
        while_loading = answer_while_held(url, topology)
        # What was seen is what a loading model gives only if none had finished loading when held.
        assert f"Service {MODEL_SERVICE[topology]} initialized" not in log.read_text()
        for process_held in held:
            process_held.resume()
        held = []
        wait_until_ready(url, process)
        first_predict = httpx.post(f"{url}/predict", files={"image": ("f.jpg", face_jpeg(1))}, timeout=60)
        files = [("images", (f"{n}.jpg", face_jpeg(n))) for n in (2, 3)]
        httpx.post(f"{url}/predict_batch", files=files, timeout=60)
        dlib = {p.pid: has_dlib(p) for p in serving_processes(process.pid)}
        yield FreshServer(
            url, process.pid, topology, trained.tag, two_versions[1], while_loading, first_predict, dlib
        )
    finally:
        for process_held in held:
            process_held.resume()
        stop(process)


def test_readyz_is_not_200_while_the_model_loads(fresh: FreshServer) -> None:
    """The split's API process answers, and not 200; in one process every worker that could answer
    is one loading its model, so the connection is accepted and nothing answers."""
    if fresh.topology == "FaceAttributes":
        assert isinstance(fresh.while_loading, tuple) and fresh.while_loading[0] >= 500, fresh.while_loading
    else:
        assert fresh.while_loading == NO_ANSWER


@pytest.mark.parametrize("fresh", ["FaceAttributes"], indirect=True)
def test_the_split_answers_the_documented_not_ready_while_its_worker_loads(fresh: FreshServer) -> None:
    responses = httpx.get(f"{fresh.url}/docs.json").json()["paths"]["/readyz"]["get"]["responses"]
    not_ready = responses["503"]["content"]["application/json"]["examples"]["not_ready"]["value"]
    assert fresh.while_loading == (503, not_ready["error"])


def test_the_first_predict_once_ready_is_answered(fresh: FreshServer) -> None:
    """Ready means the model is loaded and warmed up: the /predict sent as soon as /readyz first
    said 200 gets its answer (tests/test_runtime.py: the warm-up pass runs as the model loads)."""
    assert fresh.first_predict.status_code == 200, fresh.first_predict.text
    assert sorted(a["name"] for a in fresh.first_predict.json()["attributes"]) == sorted(ATTRIBUTES)


def test_the_model_setting_serves_that_version_not_the_latest(fresh: FreshServer) -> None:
    assert fresh.served != fresh.latest
    assert httpx.get(f"{fresh.url}/metadata").json()["model"] == fresh.served
    assert fresh.first_predict.json()["model"] == fresh.served
    answer = httpx.post(f"{fresh.url}/predict", files={"image": ("f.jpg", face_jpeg(5))}, timeout=60)
    assert answer.json()["model"] == fresh.served


def test_a_service_never_asked_for_faces_never_loads_the_detector(fresh: FreshServer) -> None:
    """After /predict and /predict_batch no serving process has dlib; the first /detect loads it."""
    # One per core, plus the split's worker.
    expected = cpu_count_workers() + (0 if fresh.topology == "FaceAttributesOneProcess" else 1)
    assert len(fresh.dlib_before_detect) == expected
    assert not any(fresh.dlib_before_detect.values()), fresh.dlib_before_detect
    answer = httpx.post(f"{fresh.url}/detect", files={"image": ("a.jpg", astronaut().jpeg())}, timeout=60)
    assert answer.status_code == 200 and answer.json()["faces_found"] == 1
    assert any(has_dlib(process) for process in serving_processes(fresh.pid))


def test_a_lone_request_is_one_image_in_one_pass_and_counted_once(fresh: FreshServer) -> None:
    """Exact counts: only this module's tests, one after the other, send this server anything."""
    images, passes = batch_counters(fresh.url)
    answered = answered_requests(fresh.url, "/predict", 200)
    response = httpx.post(f"{fresh.url}/predict", files={"image": ("f.jpg", face_jpeg(6))}, timeout=60)
    assert response.status_code == 200
    assert batch_counters(fresh.url) == (images + 1, passes + 1)
    assert answered_requests(fresh.url, "/predict", 200) == answered + 1
