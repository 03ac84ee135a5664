"""serving/settings.py: reading every ``FACE_ATTRIBUTES_*`` variable into ``Settings``.

Covered: the defaults, each variable landing in its field, the batch-size default that follows
the batch-images limit, empty and padded values, the ``SettingsError`` a bad value raises (naming
the variable, quoting the value, saying what it accepts), and that the README documents them all.
"""

import re
from pathlib import Path
from typing import Any

import pytest

from serving.settings import (
    API_WORKERS_ENV,
    DETECTION_SIDE_ENV,
    DEVICE_ENV,
    DRAIN_ENV,
    MAX_BATCH_SIZE_ENV,
    MAX_BODY_ENV,
    MAX_FACES_ENV,
    MAX_IMAGES_ENV,
    MAX_PIXELS_ENV,
    MODEL_ENV,
    TOKEN_ENV,
    TOPOLOGY_ENV,
    VARIABLES,
    Settings,
    SettingsError,
    Variable,
    markdown_table,
)

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"

# A valid value for each variable, as text, and what it is read as.
VALID: dict[str, tuple[str, Any]] = {
    MODEL_ENV: ("face-attributes:v2", "face-attributes:v2"),
    TOKEN_ENV: ("s3cret-Token_1", "s3cret-Token_1"),
    MAX_BODY_ENV: ("1048576", 1048576),
    MAX_IMAGES_ENV: ("7", 7),
    MAX_PIXELS_ENV: ("1_000_000", 1_000_000),
    MAX_BATCH_SIZE_ENV: ("3", 3),
    DRAIN_ENV: ("2.5", 2.5),
    TOPOLOGY_ENV: ("one-process", "one-process"),
    MAX_FACES_ENV: ("4", 4),
    DETECTION_SIDE_ENV: ("640", 640),
    DEVICE_ENV: ("cpu", "cpu"),
    API_WORKERS_ENV: ("3", 3),
}

INVALID = [
    (MAX_BODY_ENV, "ten"),
    (MAX_BODY_ENV, "0"),
    (MAX_BODY_ENV, "-5"),
    (MAX_BODY_ENV, "1.5"),
    (MAX_IMAGES_ENV, "0"),
    (MAX_PIXELS_ENV, "abc"),
    (MAX_BATCH_SIZE_ENV, "0"),
    (DRAIN_ENV, "-1"),
    (DRAIN_ENV, "nan"),
    (DRAIN_ENV, "inf"),
    (DRAIN_ENV, "soon"),
    (MODEL_ENV, "Not A Tag"),
    (MODEL_ENV, "x:"),
    (MODEL_ENV, "a:b:c"),
    (TOKEN_ENV, "two words"),
    (TOKEN_ENV, "tök3n"),
    (TOPOLOGY_ENV, "one_process"),
    (TOPOLOGY_ENV, "gpu"),
    (MAX_FACES_ENV, "0"),
    (MAX_FACES_ENV, "all"),
    (DETECTION_SIDE_ENV, "-640"),
    (DEVICE_ENV, "gpu"),
    (DEVICE_ENV, "cuda:1"),
    (API_WORKERS_ENV, "0"),
]


def by_name(name: str) -> Variable:
    (variable,) = (v for v in VARIABLES if v.name == name)
    return variable


def test_no_variables_gives_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_every_variable_has_a_valid_example_here() -> None:
    assert set(VALID) == {variable.name for variable in VARIABLES}


@pytest.mark.parametrize("variable", VARIABLES, ids=lambda v: v.name)
def test_each_variable_is_read_into_its_field(variable: Variable) -> None:
    text, expected = VALID[variable.name]
    settings = Settings.from_env({variable.name: text})
    assert getattr(settings, variable.field) == expected
    assert getattr(settings, variable.field) != getattr(Settings(), variable.field)


def test_batch_size_defaults_to_twice_the_batch_images_limit() -> None:
    assert Settings.from_env({MAX_IMAGES_ENV: "7"}).max_batch_size == 14


@pytest.mark.parametrize(
    ("environ", "largest"),
    [({}, 64), ({MAX_BATCH_SIZE_ENV: "8"}, 32), ({MAX_BATCH_SIZE_ENV: "4", MAX_IMAGES_ENV: "2"}, 16),
     ({MAX_IMAGES_ENV: "50"}, 100)],
)  # fmt: skip
def test_the_largest_batch_is_what_a_pass_can_bring(environ: dict[str, str], largest: int) -> None:
    """Batches of concurrent requests, or one request's images or faces above them."""
    assert Settings.from_env(environ).largest_batch == largest


def test_an_explicit_batch_size_wins_over_the_default() -> None:
    assert Settings.from_env({MAX_IMAGES_ENV: "7", MAX_BATCH_SIZE_ENV: "3"}).max_batch_size == 3


@pytest.mark.parametrize("variable", VARIABLES, ids=lambda v: v.name)
def test_an_empty_value_means_unset(variable: Variable) -> None:
    assert Settings.from_env({variable.name: ""}) == Settings()


@pytest.mark.parametrize(
    ("name", "text", "field", "expected"),
    [
        (TOKEN_ENV, "s3cret\n", "api_token", "s3cret"),  # as read from a file
        (MAX_BODY_ENV, "  1024\t", "max_body_bytes", 1024),
        (DRAIN_ENV, " 0 ", "worker_drain_seconds", 0.0),
        (MODEL_ENV, " face-attributes:v2\n", "model", "face-attributes:v2"),
    ],
)
def test_whitespace_around_a_value_is_ignored(name: str, text: str, field: str, expected: Any) -> None:
    assert getattr(Settings.from_env({name: text}), field) == expected


@pytest.mark.parametrize(("name", "text"), INVALID)
def test_an_invalid_value_raises_a_settings_error_that_explains_it(name: str, text: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: text})
    message = str(raised.value)
    assert name in message
    assert repr(text) in message
    assert by_name(name).accepts in message


def test_a_settings_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=re.escape(MAX_BODY_ENV)):
        Settings.from_env({MAX_BODY_ENV: "ten"})


def test_the_api_doc_shows_the_table_of_every_variable() -> None:
    """docs/api.md's table is ``python -m serving.settings``: a new or changed variable shows there."""
    table = markdown_table()
    assert all(f"| `{variable.name}` |" in table for variable in VARIABLES)
    assert table in API_DOC.read_text(encoding="utf-8"), "run `python -m serving.settings` into docs/api.md"


def test_a_value_of_only_whitespace_means_unset() -> None:
    """An empty token file mounted from a Secret must not become an empty token that nobody can send."""
    assert Settings.from_env({TOKEN_ENV: "\n", MAX_BODY_ENV: "  "}) == Settings()
