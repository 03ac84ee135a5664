"""tests/needs.py: a missing tool skips a test on a contributor's machine and fails it in CI."""

import pytest

from .needs import unavailable


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [("true", pytest.fail.Exception), ("TRUE", pytest.fail.Exception), ("", pytest.skip.Exception),
     ("false", pytest.skip.Exception)],
)  # fmt: skip
def test_a_missing_tool_fails_only_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="chromium is not on PATH"):
        unavailable("chromium is not on PATH")


def test_without_ci_set_it_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        unavailable("kubectl is not installed")
