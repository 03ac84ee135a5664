"""models/openmp.py: libgomp's waiting, set for the serving processes unless the user chose."""

import pytest

from models.openmp import LIBGOMP_WAITING, spin_between_layers, torch_bundles_libgomp


def test_the_torch_installed_here_ships_libgomp() -> None:
    assert torch_bundles_libgomp()  # the Linux CPU wheel pinned in pyproject.toml


def test_both_variables_are_set_where_neither_was() -> None:
    environ = {"PATH": "/usr/bin"}
    assert spin_between_layers(environ) == LIBGOMP_WAITING
    assert environ == {"PATH": "/usr/bin", "OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "300000"}


@pytest.mark.parametrize("name", sorted(LIBGOMP_WAITING))
def test_a_users_own_setting_stands_and_nothing_is_added(name: str) -> None:
    environ = {name: "PASSIVE" if name == "OMP_WAIT_POLICY" else "0"}
    before = dict(environ)
    assert spin_between_layers(environ) == {}
    assert environ == before


def test_nothing_is_set_where_torch_brings_another_openmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("models.openmp.torch_bundles_libgomp", lambda: False)
    environ: dict[str, str] = {}
    assert spin_between_layers(environ) == {}
    assert environ == {}
