"""The command line both exporters share: ``--out`` and ``--model``, then one line naming the result."""

import argparse
from collections.abc import Callable
from pathlib import Path

import bentoml

from models.names import DEFAULT_MODEL_TAG
from models.store import ModelUnusableError, require_model
from serving.settings import MODEL_ENV, Settings, SettingsError

Export = Callable[[bentoml.Model, Path], Path]


def run_export(prog: str, description: str, out_help: str, export: Export, result: str) -> None:
    """Parse the command line, export the chosen stored model, print ``result: <path>``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument(
        "--model", help=f"model tag in the store (default: ${MODEL_ENV}, else {DEFAULT_MODEL_TAG})"
    )
    args = parser.parse_args()
    try:
        model = require_model(
            args.model or Settings.from_env(only={MODEL_ENV}).model, f"--model (or {MODEL_ENV})"
        )
    except (ModelUnusableError, SettingsError) as error:
        parser.error(str(error))
    print(f"{result}: {export(model, args.out)}")
