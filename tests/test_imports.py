"""The layout holds: who may import whom, checked on every file, and serving never loads training."""

import ast
import os
import subprocess
from pathlib import Path

import pytest

from harness.server import ROOT

from .conftest import PYTHON, TrainedModel

# Each part of the project, and the parts it may import. train/ and serving/ both stand on models/
# and never on each other; the bento ships models/, serving/ and service.py alone.
MAY_IMPORT = {
    "models": {"models"},
    "train": {"models", "train"},
    "serving": {"models", "serving"},
    "service": {"models", "serving"},
    "exporters": {"models", "serving", "exporters"},
    "container": {"models", "container"},
    "harness": {"models", "serving", "train", "container", "harness"},
    "bench": {"models", "serving", "train", "container", "harness", "bench"},
    "tests": {"models", "serving", "train", "exporters", "container", "harness", "bench", "tests"},
}
# Inside serving/, each group (a subpackage, or a module beside them) and the groups it may
# import: the shared basics first, then the request path, the protocol, the HTTP API, and process
# tuning, which reads the API's ASGI types.
SERVING_MAY_IMPORT = {
    "settings": set(),
    "errors": {"settings"},
    "inference": {"errors", "settings", "inference"},
    "served": {"inference"},
    "predict": {"errors", "settings", "inference"},
    "oip": {"errors", "inference", "served", "oip"},
    "api": {"errors", "settings", "inference", "served", "oip", "api"},
    "process": {"settings", "inference", "api", "process"},
}
PARTS = set(MAY_IMPORT)
TRAINING_STACK = ("pytorch_lightning", "lightning", "torchmetrics", "train")
WEB_STACK = ("bentoml", "fastapi", "starlette")


def python_files(part: str) -> list[Path]:
    return [ROOT / "service.py"] if part == "service" else sorted((ROOT / part).rglob("*.py"))


def imported_modules(file: Path) -> set[str]:
    """The absolute module names ``file`` imports (relative imports stay inside its own part)."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def project_imports(file: Path) -> set[str]:
    """The project parts ``file`` imports."""
    return {name.split(".")[0] for name in imported_modules(file)} & PARTS


def serving_group(module: str) -> str:
    """``serving.api.edge`` -> ``api``; ``serving.errors.ServiceError`` -> ``errors``."""
    return module.split(".")[1]


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_each_part_imports_only_what_it_stands_on(part: str) -> None:
    files = python_files(part)
    assert files
    wrong = {
        str(file.relative_to(ROOT)): sorted(project_imports(file) - MAY_IMPORT[part])
        for file in files
        if project_imports(file) - MAY_IMPORT[part]
    }
    assert not wrong, wrong


@pytest.mark.parametrize("group", sorted(SERVING_MAY_IMPORT))
def test_each_serving_group_imports_only_what_it_stands_on(group: str) -> None:
    files = [ROOT / "serving" / f"{group}.py"] if (ROOT / "serving" / f"{group}.py").exists() else []
    files += sorted((ROOT / "serving" / group).glob("*.py"))
    assert files
    wrong = {}
    for file in files:
        groups = {serving_group(m) for m in imported_modules(file) if m.startswith("serving.")}
        if groups - SERVING_MAY_IMPORT[group]:
            wrong[str(file.relative_to(ROOT))] = sorted(groups - SERVING_MAY_IMPORT[group])
    assert not wrong, wrong


def test_every_serving_module_is_in_a_group() -> None:
    grouped = {
        file.relative_to(ROOT / "serving").parts[0].removesuffix(".py") for file in python_files("serving")
    }
    assert grouped - {"__init__"} == set(SERVING_MAY_IMPORT)


def test_every_part_of_the_project_is_in_the_table() -> None:
    parts = {path.parent.name for path in ROOT.glob("*/*.py") if not path.parent.name.startswith(".")}
    assert parts | {"service"} == PARTS


def assert_none_loads(modules: list[str], forbidden: tuple[str, ...], env: dict | None = None) -> None:
    """Import ``modules`` one after another; fail naming the first that loads a forbidden package."""
    check = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"    leaked = sorted(m for m in {forbidden!r} if m in sys.modules)\n"
        "    assert not leaked, f'{name} imports {leaked}'\n"
    )
    result = subprocess.run([PYTHON, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("part", ["models", "serving"])
def test_the_shipped_packages_never_import_the_training_stack(part: str) -> None:
    modules = [".".join(file.relative_to(ROOT).with_suffix("").parts) for file in python_files(part)]
    assert_none_loads([name.removesuffix(".__init__") for name in modules], TRAINING_STACK)


def test_the_service_definitions_import_neither_the_training_stack_nor_torch(trained: TrainedModel) -> None:
    """What the `bentoml serve` process and the split's API process import: torch (about 200 MiB
    per process) is loaded only where the model runs."""
    env = {**os.environ, "BENTOML_HOME": str(trained.home)}
    assert_none_loads(["service"], (*TRAINING_STACK, "torch"), env=env)


def test_the_torchserve_handler_needs_no_bentoml_and_no_web_framework() -> None:
    assert_none_loads(["exporters.torchserve_handler"], WEB_STACK + TRAINING_STACK)


def packages() -> list[str]:
    inits = [init for part in PARTS - {"service"} for init in (ROOT / part).rglob("__init__.py")]
    return sorted(str(init.parent.relative_to(ROOT)) for init in inits)


def test_every_package_is_checked_for_its_docstring() -> None:
    assert {"serving/api", "serving/oip", "serving/inference", "serving/process", "models"} <= set(packages())


@pytest.mark.parametrize("package", packages())
def test_each_folder_says_its_one_job(package: str) -> None:
    opening = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
    assert opening and len(opening) > 40, (
        f"{package}/__init__.py has no docstring saying what the folder is for"
    )


def test_no_module_grows_past_about_300_lines() -> None:
    sizes = {
        str(file.relative_to(ROOT)): len(file.read_text().splitlines())
        for part in PARTS
        for file in python_files(part)
    }
    assert not {name: lines for name, lines in sizes.items() if lines > 320}
