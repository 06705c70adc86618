"""Where the files shipped with distrib are: templates, the example config, the sample site;
and how distrib creates the files that hold subscriber data (owner-only modes).

Installed from a wheel, the templates are inside the package (distrib/templates); in a
source checkout or an editable install they are at the top of the repository.
Contains no business logic.
"""

from __future__ import annotations

import os
import stat
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


# --- files that hold subscriber data ---------------------------------------------------

#: Modes of the files and folders distrib makes that hold addresses, tokens or messages
#: (.eml files, reports, exports): readable by their owner only.
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700; an existing folder keeps its mode."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """An ``open(..., opener=)`` that creates the file 0600, and narrows an existing
    regular file it overwrites to 0600 too (never a terminal, a pipe or /dev/stdout)."""
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, PRIVATE_FILE)
    except OSError:
        pass  # not ours to change (another owner's file we may write): leave it
    return fd
