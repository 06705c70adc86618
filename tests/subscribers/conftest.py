"""Fixtures for the subscriber, unsubscribe-endpoint and recipients tests.

Settings are built from distrib's own schema tables (validated like a config file) so
that these tests do not depend on which sources and mailers are installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from distrib.config import EMAIL, SITE, Ctx, Settings, validate_table
from distrib.ledger import Ledger, open_ledger


def make_settings(
    tmp_path: Path, *, email: dict[str, Any] | None = None, site: dict[str, Any] | None = None
) -> Settings:
    ctx = Ctx(base_dir=tmp_path)
    data = {
        "site": validate_table(
            SITE,
            {"name": "Harbour Notes", "url": "https://news.example/"} | (site or {}),
            "site",
            ctx,
        ),
        "email": validate_table(
            EMAIL, {"from": "Harbour Notes <news@news.example>"} | (email or {}), "email", ctx
        ),
    }
    assert not ctx.problems, ctx.problems
    return Settings(path=tmp_path / "distrib.toml", data=data)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = open_ledger(tmp_path / "distrib.sqlite")
    yield led
    led.close()


@pytest.fixture
def settings_factory(tmp_path: Path):
    def factory(**kw: Any) -> Settings:
        return make_settings(tmp_path, **kw)

    return factory
