"""The base image: ``python:3.11-slim`` where a registry gives it, else an equivalent built here.

The equivalent is Debian bookworm (the release ``python:3.11-slim`` is built on, with the same
Python 3.11) made by ``debootstrap --variant=minbase`` from the mirror in this host's apt sources,
plus ``uv`` (what BentoML's Dockerfile installs packages with) and the host's extra CA certificates,
so package installs inside the build reach the same registries the host does. It is tagged
``python:3.11-slim``, the name the bento's Dockerfile uses (``docker rmi`` it to pull the real one).
"""

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from container.engine import Engine

REGISTRY_BASE = "python:3.11-slim"  # what bentofile.yaml names (BentoML's default for Python 3.11)
LOCAL_BASE = "face-attributes-base:bookworm-python3.11"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
EXTRA_CERTIFICATES = Path("/usr/local/share/ca-certificates")  # where Debian keeps locally added CAs
PACKAGES = ("python3", "ca-certificates")
CERTIFICATES = "/etc/ssl/certs/ca-certificates.crt"
# uv reads neither pip.conf nor the system store unless told (GOTCHAS).
IMAGE_ENV = (f"SSL_CERT_FILE={CERTIFICATES}", "UV_SYSTEM_CERTS=1")


def base_image(engine: Engine) -> str:
    """Make sure the base the bento's Dockerfile names is here: pulled, or else built locally and
    tagged with that name, so the bento is the same on both routes. Says which route it took."""
    if engine.has_image(REGISTRY_BASE):
        return f"{REGISTRY_BASE} (already here)"
    if engine.run("pull", REGISTRY_BASE, check=False, timeout=300).returncode == 0:
        return f"{REGISTRY_BASE} (pulled)"
    if not engine.has_image(LOCAL_BASE):
        build_local_base(engine)
    engine.run("tag", LOCAL_BASE, REGISTRY_BASE)
    return f"{REGISTRY_BASE} (cannot be pulled: built here as {LOCAL_BASE})"


def host_mirror() -> str:
    """The first Debian mirror in this host's apt sources (deb822 or one-line format)."""
    for path in APT_SOURCES:
        if path.exists():
            found = re.search(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", path.read_text(), re.MULTILINE)
            if found:
                return found.group(1)
    return DEFAULT_MIRROR


def build_local_base(engine: Engine) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError(f"{REGISTRY_BASE} cannot be pulled and debootstrap is not installed")
    with tempfile.TemporaryDirectory(prefix="face-attributes-base-") as scratch:
        root = Path(scratch) / "root"
        print(f"building {LOCAL_BASE} with debootstrap from {host_mirror()} (about 2 minutes)", flush=True)
        include = f"--include={','.join(PACKAGES)}"
        subprocess.run(
            ["debootstrap", "--variant=minbase", include, SUITE, str(root), host_mirror()],
            check=True, capture_output=True,
        )  # fmt: skip
        trust_host_certificates(root)
        add_uv(root, Path(scratch))
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        changes = [arg for env in IMAGE_ENV for arg in ("--change", f"ENV {env}")]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([engine.client, "import", *changes, "-", LOCAL_BASE], stdin=tar.stdout, check=True)
        if tar.wait() != 0:
            raise RuntimeError("could not archive the debootstrap root")


def trust_host_certificates(root: Path) -> None:
    if EXTRA_CERTIFICATES.is_dir():
        shutil.copytree(EXTRA_CERTIFICATES, root / EXTRA_CERTIFICATES.relative_to("/"), dirs_exist_ok=True)
    subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True, capture_output=True)


def add_uv(root: Path, scratch: Path) -> None:
    """uv's static binary from its wheel: BentoML's Dockerfile skips ``pip install uv`` when present."""
    wheels = scratch / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(wheels), "uv"],
        check=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("uv-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (binary,) = [name for name in archive.namelist() if name.endswith("/scripts/uv")]
        target = root / "usr/local/bin/uv"
        target.write_bytes(archive.read(binary))
        target.chmod(0o755)
