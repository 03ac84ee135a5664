"""serving/process/siblings.py in-process: real child processes of this test stand for BentoML's workers."""

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from serving.process.siblings import Siblings, without_worker_id

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen]]:
    started = [subprocess.Popen([*SLEEP, "--worker-id", str(n)]) for n in (1, 2, 3)]
    other = subprocess.Popen([*SLEEP, "--service-name", "AttributeClassifier"])  # not a sibling
    yield started
    for process in [*started, other]:
        process.kill()
        process.wait()


@pytest.mark.parametrize(
    ("command", "shape"),
    [
        (["python", "-m", "w", "--worker-id", "2", "--fd", "3"], ["python", "-m", "w", "--fd", "3"]),
        (["python", "-m", "w", "--fd", "3"], ["python", "-m", "w", "--fd", "3"]),
    ],
)
def test_the_worker_id_is_all_that_tells_siblings_apart(command: list[str], shape: list[str]) -> None:
    assert without_worker_id(command) == shape


def test_all_run_until_one_is_gone(workers: list[subprocess.Popen]) -> None:
    siblings = Siblings(psutil.Process(workers[0].pid))
    assert siblings.most == 3 and siblings.all_running()
    workers[2].kill()
    workers[2].wait()
    assert not siblings.all_running()
    assert not siblings.all_running()  # stays failed: the count it saw does not shrink with it
