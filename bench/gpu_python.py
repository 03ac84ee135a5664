"""A Python 3.11 for ``make gpu-check``'s venv: the project needs exactly 3.11, and stock Ubuntu and
NVIDIA's images have 3.10 or 3.12. Prints the interpreter's path; runs under any python3.

    python3 bench/gpu_python.py --venv .venv

In order: the venv's own interpreter where the venv is there already (on another version: remove it
first, says so); ``python3.11`` on PATH; uv's (``uv python find 3.11``), which uv installs first if
it has none (``uv python install 3.11``, a standalone CPython). An interpreter counts only if it
can make a venv with pip in it (Debian's and Ubuntu's need their python3.11-venv package). Without
one it says what it found and how to get one, and exits 1.
"""

from __future__ import annotations  # annotations stay text: this runs on the host's python3, any version

import argparse
import os
import shutil
import subprocess
import sys

WANTED = "3.11"
# Its version, then whether it has what `python -m venv` needs to put pip in the venv.
PROBE = (
    "import sys; print('%d.%d' % sys.version_info[:2])\n"
    "try:\n    import venv, ensurepip\n    print('venv')\n"
    "except ImportError:\n    print('no venv')"
)
GET_PYTHON = (
    "install Python 3.11 with its venv module (Debian, Ubuntu: apt-get install python3.11 "
    "python3.11-venv; on Ubuntu releases without them, from the deadsnakes PPA), or uv, which "
    "installs one itself (python3 -m pip install --user uv, or "
    "https://docs.astral.sh/uv/getting-started/installation/)"
)


class NotFound(Exception):
    """No usable Python 3.11: the message says what was found and what to do."""


def probe(python: str) -> tuple[str | None, bool]:
    """The interpreter's version ("3.11"), and whether it can make a venv with pip; (None, False)
    where it does not run."""
    try:
        result = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None, False
    lines = result.stdout.splitlines()
    if result.returncode != 0 or not lines:
        return None, False
    return lines[0], lines[-1] == "venv"


def usable(python: str, notes: list[str]) -> bool:
    """Whether ``python`` is a 3.11 that makes venvs; notes why not."""
    version, makes_venvs = probe(python)
    if version == WANTED and makes_venvs:
        return True
    if version == WANTED:
        notes.append(
            f"{python} has no venv module with pip (Debian, Ubuntu: apt-get install python3.11-venv)"
        )
    else:
        notes.append(f"{python} is Python {version or '(does not run)'}")
    return False


def from_uv(uv: str, notes: list[str]) -> str | None:
    """uv's Python 3.11, installed first if uv has none. uv's own output goes to stderr: stdout
    is this script's answer."""

    def find() -> str | None:
        found = subprocess.run([uv, "python", "find", WANTED], capture_output=True, text=True)
        path = found.stdout.strip()
        return path if found.returncode == 0 and path and usable(path, notes) else None

    python = find()
    if python is None:
        print(f"gpu-check: installing Python {WANTED} with uv", file=sys.stderr, flush=True)
        if subprocess.run([uv, "python", "install", WANTED], stdout=sys.stderr).returncode != 0:
            notes.append(f"`uv python install {WANTED}` failed (its output is above)")
            return None
        python = find()
    return python


def find_python(venv: str) -> str:
    own = os.path.join(venv, "bin", "python")
    if os.path.exists(own):
        version, _ = probe(own)
        if version == WANTED:
            return own
        raise NotFound(
            f"{venv} is a venv of Python {version or '(does not run)'} and the project needs {WANTED}: "
            f"remove it (rm -rf {venv}) and run make gpu-check again"
        )
    notes: list[str] = []
    on_path = shutil.which(f"python{WANTED}")
    if on_path and usable(on_path, notes):
        return on_path
    if not on_path:
        notes.append(f"no python{WANTED} on PATH")
    uv = shutil.which("uv")
    if uv:
        python = from_uv(uv, notes)
        if python:
            return python
    else:
        notes.append("no uv on PATH")
    raise NotFound(f"no Python {WANTED} to make the venv with: {'; '.join(notes)}. To get one: {GET_PYTHON}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--venv", default=".venv", help="the project's venv folder (default: .venv)")
    args = parser.parse_args()
    try:
        print(find_python(args.venv))
    except NotFound as error:
        print(f"gpu-check: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
