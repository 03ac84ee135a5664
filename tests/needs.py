"""A tool the suite needs from the machine and cannot find: a skip here, a failure in CI.

``make test`` installs Chromium and the Docker engine, and CI's machine has Java and kubectl: there,
a missing tool means an install broke, and a skip would pass the run with those tests unrun. So
under ``CI=true`` (``.ci/run`` sets it) the same reason fails the test instead.
"""

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: this tool must be present in CI)", pytrace=False)
    pytest.skip(reason)
