"""Where the files shipped with distrib are: templates, the example config, the sample site.

Installed from a wheel, the templates are inside the package (distrib/templates); in a
source checkout or an editable install they are at the top of the repository.
Contains no business logic.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = PACKAGE_DIR / "sample"


def example_config() -> Path:
    """The commented reference config (shipped inside the wheel, like the templates)."""
    inside = PACKAGE_DIR / "config.example.toml"
    if inside.is_file():
        return inside
    return PACKAGE_DIR.parent / "config.example.toml"


def templates_dir() -> Path:
    inside = PACKAGE_DIR / "templates"
    if inside.is_dir():
        return inside
    return PACKAGE_DIR.parent / "templates"
