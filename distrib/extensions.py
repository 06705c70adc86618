"""Imports the modules that register extra config sections (kept in one place).

Each feature module that owns a root config section calls
:func:`distrib.config.register_section` at import time; list it here.
"""

from __future__ import annotations

from . import (
    hooks,  # noqa: F401  ([webhooks])
    signup,  # noqa: F401  ([signup])
)
from .render import theme  # noqa: F401  ([theme])
