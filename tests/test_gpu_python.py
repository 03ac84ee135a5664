"""The finder of the Python 3.11 ``make gpu-check``'s venv is made with (bench/gpu_python.py), with
only stand-in interpreters and a stand-in uv on PATH."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.server import ROOT

REAL_PYTHON = os.path.realpath(sys.executable)  # this 3.11 itself, not the venv's link to it
FINDER = str(ROOT / "bench" / "gpu_python.py")


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_python(path: Path, version: str, venv_module: bool = True) -> Path:
    """An interpreter that answers the finder's probe as ``version`` would, with or without venv."""
    return executable(path, f"#!/bin/sh\necho {version}\necho {'venv' if venv_module else 'no venv'}\n")


def fake_uv(folder: Path, installs: str) -> Path:
    """uv, as far as the finder uses it: ``python find`` knows ``installs`` once ``python install``
    has run; every call is logged."""
    script = f"""#!/bin/sh
echo "$*" >> {folder}/uv.calls
case "$1 $2" in
  "python find")
    [ -e {folder}/installed ] || {{ echo "error: no interpreter" >&2; exit 2; }}
    echo {installs}; exit 0 ;;
  "python install") : > {folder}/installed; echo "Installed Python 3.11"; exit 0 ;;
esac
exit 1
"""
    return executable(folder / "bin" / "uv", script)


def find(tmp_path: Path, venv: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The finder with only ``tmp_path/bin`` on PATH."""
    return subprocess.run(
        [REAL_PYTHON, FINDER, "--venv", str(venv or tmp_path / "no-venv")],
        env={"PATH": str(tmp_path / "bin")}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def bin_folder(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    return tmp_path / "bin"


def test_the_finder_takes_python3_11_on_path(tmp_path: Path, bin_folder: Path) -> None:
    (bin_folder / "python3.11").symlink_to(REAL_PYTHON)
    fake_uv(tmp_path, "/never/used")
    found = find(tmp_path)
    assert (found.returncode, found.stdout) == (0, f"{bin_folder / 'python3.11'}\n"), found.stderr
    assert not (tmp_path / "uv.calls").exists()


def test_the_finder_has_uv_install_3_11_where_path_has_another_version(
    tmp_path: Path, bin_folder: Path
) -> None:
    fake_python(bin_folder / "python3.11", "3.12")  # a misnamed one
    fake_uv(tmp_path, REAL_PYTHON)
    found = find(tmp_path)
    assert (found.returncode, found.stdout) == (0, f"{REAL_PYTHON}\n"), (
        found.stderr
    )  # uv's words went to stderr
    assert "Installed Python 3.11" in found.stderr
    calls = (tmp_path / "uv.calls").read_text().splitlines()
    assert calls == ["python find 3.11", "python install 3.11", "python find 3.11"]


def test_the_finder_says_how_to_get_python_or_uv_when_there_is_neither(
    tmp_path: Path, bin_folder: Path
) -> None:
    fake_python(bin_folder / "python3.11", "3.11", venv_module=False)  # Debian's, without python3.11-venv
    found = find(tmp_path)
    assert found.returncode == 1 and found.stdout == ""
    assert found.stderr.startswith("gpu-check: no Python 3.11 to make the venv with: ")
    assert "apt-get install python3.11-venv" in found.stderr and "no uv on PATH" in found.stderr
    assert "pip install --user uv" in found.stderr


def test_the_finder_keeps_a_3_11_venv_and_refuses_one_of_another_version(
    tmp_path: Path, bin_folder: Path
) -> None:
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    fake_python(tmp_path / "venv" / "bin" / "python", "3.11")
    assert find(tmp_path, tmp_path / "venv").stdout == f"{tmp_path / 'venv' / 'bin' / 'python'}\n"
    fake_python(tmp_path / "venv" / "bin" / "python", "3.12")
    refused = find(tmp_path, tmp_path / "venv")
    assert refused.returncode == 1
    assert f"is a venv of Python 3.12 and the project needs 3.11: remove it (rm -rf {tmp_path / 'venv'})" in (
        refused.stderr
    )
