"""The command-line start the benchmarks that serve one stored model share."""

import argparse

from serving.settings import MODEL_ENV, Settings


def model_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser with the module's docstring as its help, and ``--model``: the stored model to serve
    (``FACE_ATTRIBUTES_MODEL``, else the demo model)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=Settings.from_env(only={MODEL_ENV}).model, help="model tag (default: %(default)s)"
    )
    return parser
