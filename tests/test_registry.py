"""One registry: pyproject.toml's entry points are the source of truth, and every
adapter honours the contract of distrib/adapters.py."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from distrib import adapters, registry
from distrib.errors import AdapterUnavailable

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_the_adapters_found_are_the_entry_points_of_pyproject() -> None:
    """pyproject.toml is the one registry: what the registry finds for our own groups is
    exactly what that file declares, whether read from the installed metadata or, in a
    checkout never installed, from the file itself."""
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["entry-points"]
    assert set(registry.GROUPS) == set(declared)
    assert registry._declared_in_checkout() == {g: declared[g] for g in registry.GROUPS}
    for group in registry.GROUPS:
        found = registry.names(group)
        assert {k: v for k, v in found.items() if k in declared[group]} == declared[group]


def test_a_checkout_never_installed_still_finds_every_adapter(tmp_path: Path) -> None:
    """Without distrib's package metadata (a bare checkout on PYTHONPATH), a fresh
    interpreter still finds each built-in adapter, from pyproject.toml."""
    import subprocess
    import sys

    root = PYPROJECT.parent
    script = (
        "import importlib.metadata as m\n"
        "real = m.entry_points\n"
        "m.entry_points = lambda **kw: real(group='no-such-group')\n"
        "from distrib import registry\n"
        "print(sorted(registry.names('distrib.channels')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["entry-points"]
    assert out.strip() == str(sorted(declared["distrib.channels"]))


@pytest.mark.parametrize("group", registry.GROUPS)
def test_every_builtin_adapter_subclasses_its_base(group: str) -> None:
    base = adapters.BASES[group]
    for name in registry.names(group):
        try:
            cls = registry.load_as(group, name, base)
        except AdapterUnavailable as e:
            assert "pip install" in str(e)  # an extra that is not installed here
            continue
        assert issubclass(cls, base)
        assert isinstance(cls.options, dict) and isinstance(cls.requires, tuple)


def test_a_registered_class_outside_the_contract_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry._cache, "distrib.channels", {"odd": "distrib.model:Post"})
    with pytest.raises(AdapterUnavailable) as e:
        adapters.load_channel("odd")
    assert str(e.value) == (
        "the channel 'odd' is registered as distrib.model:Post, which is not a subclass of "
        "distrib.adapters.Channel; fix or remove that package"
    )


def test_the_base_classes_declare_what_the_app_reads() -> None:
    """A minimal adapter needs none of the optional parts: the bases give the defaults."""

    class Quiet(adapters.Channel):
        pass

    class Plain(adapters.Mailer):
        pass

    class Files(adapters.Source):
        pass

    channel = Quiet("q", None, None)  # type: ignore[arg-type]
    assert channel.template_names() == []
    assert channel.close() is None
    assert Plain(None, None).check_notes() == []  # type: ignore[arg-type]
    assert Plain.handoff is False
    assert Files("f", None, None).since is None  # type: ignore[arg-type]
