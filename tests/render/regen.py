"""Regenerate tests/render/golden/ from the fixed editions: ``python -m tests.render.regen``.

Run it only when a change to the templates or the renderer is intended, then review
``git diff tests/render/golden`` before committing.
"""

from __future__ import annotations

from .golden_case import GOLDEN_DIR, golden_editions, golden_files


def main() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name, content in golden_files(golden_editions()).items():
        path = GOLDEN_DIR / name
        path.write_text(content, encoding="utf-8", newline="")
        print(f"wrote {path} ({len(content.encode('utf-8'))} bytes)")


if __name__ == "__main__":
    main()
