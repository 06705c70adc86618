"""Golden files: the HTML, text and headers of fixed editions, compared exactly.

MRML's output is byte-stable, so any difference is a change in the templates, the
renderer, Babel's locale data or mjml-python.  When the change is intended, regenerate:

    python -m tests.render.regen

and review ``git diff tests/render/golden``.  Tests never regenerate them.
"""

from __future__ import annotations

import difflib

import pytest

from .golden_case import GOLDEN_DIR, golden_editions, golden_files

EXPECTED = sorted(golden_files(golden_editions()))


@pytest.fixture(scope="module")
def actual() -> dict[str, str]:
    return golden_files(golden_editions())


@pytest.mark.parametrize("name", EXPECTED)
def test_matches_golden(name: str, actual: dict[str, str]) -> None:
    path = GOLDEN_DIR / name
    assert path.exists(), f"{path} is missing; run: python -m tests.render.regen"
    expected = path.read_text(encoding="utf-8")
    if actual[name] != expected:
        diff = "".join(
            list(
                difflib.unified_diff(
                    expected.replace("><", ">\n<").splitlines(keepends=True),
                    actual[name].replace("><", ">\n<").splitlines(keepends=True),
                    f"golden/{name}",
                    "rendered",
                    n=1,
                )
            )[:60]
        )
        pytest.fail(
            f"{name} differs from the golden file (if intended: python -m tests.render.regen)\n{diff}"
        )
