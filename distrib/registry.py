"""Finds adapters (sources, mailers, channels) through entry points.

The built-in adapters are registered in our own pyproject.toml in the same groups a
third party would use: those entry points are the one registry.  A source checkout that
was never installed (or whose metadata is older than its pyproject.toml) reads them from
that file directly, so there is no second list to keep in step; installed entry points
win when both name an adapter.  An adapter is a subclass of the base class of its group (distrib.adapters).
An adapter whose optional library is missing is reported as unavailable with the
install hint, not a crash.  Contains no business logic.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, cast

from .errors import AdapterUnavailable, ConfigError

GROUPS = ("distrib.sources", "distrib.mailers", "distrib.channels")

#: pyproject.toml of a source checkout (absent from an installed wheel).
_CHECKOUT_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _declared_in_checkout() -> dict[str, dict[str, str]]:
    """The entry points written in the checkout's own pyproject.toml, when distrib runs
    from a source tree (``PYTHONPATH``) whose package metadata is missing or older than
    the file.  Empty for an installed wheel, which has no such file beside it."""
    try:
        project = tomllib.loads(_CHECKOUT_PYPROJECT.read_text(encoding="utf-8"))["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {}
    if project.get("name") != "distrib":
        return {}
    declared = project.get("entry-points", {})
    return {group: dict(declared.get(group, {})) for group in GROUPS}


class Adapter(Protocol):
    """What the registry and the config read of an adapter class (distrib.adapters
    declares the rest): its options, and the optional modules it needs."""

    options: ClassVar[Mapping[str, Any]]
    requires: ClassVar[tuple[str, ...]]


#: The base class (in distrib.adapters) of each group's adapters, for messages.
BASE_NAMES = {
    "distrib.sources": "Source",
    "distrib.mailers": "Mailer",
    "distrib.channels": "Channel",
}


A = TypeVar("A", bound=Adapter)


@dataclass(frozen=True)
class AdapterInfo:
    group: str
    name: str
    target: str  # "module:Class"
    available: bool
    hint: str  # why not available, and what to install


_cache: dict[str, dict[str, str]] = {}


def names(group: str) -> dict[str, str]:
    """name -> "module:Class" for every adapter registered in ``group``."""
    if group not in _cache:
        found = _declared_in_checkout().get(group, {})
        for ep in entry_points(group=group):
            found[ep.name] = ep.value
        _cache[group] = found
    return _cache[group]


def load(group: str, name: str) -> type[Adapter]:
    """The adapter class registered as ``name`` in ``group``."""
    registered = names(group)
    kind = group.split(".")[-1][:-1]  # "source", "mailer", "channel"
    if name not in registered:
        raise ConfigError(
            f"unknown {kind} type {name!r}: expected one of {', '.join(sorted(registered))}"
        )
    module_name, _, attr = registered[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or str(e)
        if missing == module_name or missing.startswith(module_name + "."):
            raise AdapterUnavailable(
                f"the {kind} {name!r} is registered as {registered[name]} but that module "
                f"is missing; reinstall the package that provides it"
            ) from None
        raise AdapterUnavailable(_hint(kind, name, missing)) from None
    cls = getattr(module, attr, None)
    if not (
        isinstance(cls, type)
        and isinstance(getattr(cls, "options", None), Mapping)
        and isinstance(getattr(cls, "requires", None), tuple)
    ):
        raise AdapterUnavailable(_not_an_adapter(group, name))
    return cast("type[Adapter]", cls)


def options(group: str, name: str) -> Mapping[str, Any]:
    """The options the adapter registered as ``name`` declares (for the config)."""
    return load(group, name).options


def _not_an_adapter(group: str, name: str) -> str:
    kind = group.split(".")[-1][:-1]
    return (
        f"the {kind} {name!r} is registered as {names(group)[name]}, which is not a "
        f"subclass of distrib.adapters.{BASE_NAMES.get(group, 'Source')}; fix or remove that package"
    )


def load_as(group: str, name: str, base: type[A]) -> type[A]:
    """The adapter class registered as ``name`` in ``group``, checked to subclass ``base``
    (the group's class in distrib.adapters, passed in so this module imports none)."""
    cls = load(group, name)
    if not issubclass(cls, base):
        raise AdapterUnavailable(_not_an_adapter(group, name))
    return cls


def _hint(kind: str, name: str, missing: str) -> str:
    return (
        f"the {kind} {name!r} needs the Python package {missing!r}, which is not installed: "
        f"pip install 'distrib[{name}]'"
    )


def describe(group: str, base: type[Adapter]) -> list[AdapterInfo]:
    """Every adapter of ``group`` (subclasses of ``base``) with whether it can be used
    here (for `distrib check`)."""
    out = []
    for name, target in sorted(names(group).items()):
        try:
            cls = load_as(group, name, base)
            for mod in cls.requires:
                importlib.import_module(mod)
        except AdapterUnavailable as e:
            out.append(AdapterInfo(group, name, target, False, str(e)))
        except ModuleNotFoundError as e:
            kind = group.split(".")[-1][:-1]
            out.append(AdapterInfo(group, name, target, False, _hint(kind, name, e.name or "")))
        else:
            out.append(AdapterInfo(group, name, target, True, ""))
    return out
