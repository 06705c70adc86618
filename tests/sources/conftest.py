"""Fixtures for the sources: a Context on a real config and ledger, fixture files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from distrib.adapters import Context
from distrib.config import load_config
from distrib.ledger import open_ledger

DATA = Path(__file__).resolve().parent / "data"
NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def minimal_config(tmp_path: Path, sources: str = "", site: str = "") -> Path:
    """A minimal valid config; ``sources`` is TOML for [[sources]] tables (else the sample)."""
    sources = sources or '[[sources]]\nname = "sample"\ntype = "sample"\n'
    path = tmp_path / "distrib.toml"
    path.write_text(
        textwrap.dedent(
            """
            [site]
            name = "Test Site"
            url = "https://test.example/"
            {site}

            [email]
            from = "News <news@test.example>"
            """
        ).format(site=site)
        + "\n"
        + textwrap.dedent(sources),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[Callable[..., Context]]:
    """``make_ctx(sources_toml="", now=NOW, ledger=True, site="")`` -> a Context; closed after the test.

    ``site`` is extra TOML lines for [site], such as 'timezone = "Europe/Kyiv"'.
    """
    made: list[Context] = []

    def make(
        sources: str = "", *, now: datetime = NOW, ledger: bool = True, site: str = ""
    ) -> Context:
        settings = load_config(minimal_config(tmp_path, sources, site))
        ctx = Context(
            settings=settings,
            now=now,
            ledger=open_ledger(tmp_path / "l.sqlite") if ledger else None,
        )
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()
        if ctx.ledger is not None:
            ctx.ledger.close()


def source_of(ctx: Context, index: int = 0):
    """The adapter object of ``[[sources]]`` number ``index``, built as the app builds it."""
    from distrib import registry

    opts = ctx.settings.sources[index]
    cls = registry.load("distrib.sources", opts.type)
    return cls(opts.name, opts, ctx)
