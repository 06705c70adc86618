"""Fixtures for the email rendering tests: settings from a small TOML, posts, a clock.

Posts are built directly (distrib.model.Post); Settings come from load_config on a
config written in tmp_path, so the [theme] section is validated as users' would be.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from distrib.config import Settings

from .cases import FIXED_NOW, make_posts, settings_from  # noqa: F401  (re-exported for tests)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """``make_settings(extra_toml, site_extra="language = 'ar'")`` -> Settings."""

    def make(extra: str = "", *, site: str = "") -> Settings:
        return settings_from(tmp_path, extra, site=site)

    return make
