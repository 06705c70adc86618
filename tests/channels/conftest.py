"""Fixtures for the share channels: a real ledger file, validated channel settings, posts.

Networks are faked at the HTTP layer by pytest-httpserver (a real server on 127.0.0.1)
answering with the shapes the platforms document; nothing of distrib is mocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from distrib import registry
from distrib.adapters import Channel, Context
from distrib.config import CHANNEL, Ctx, Settings, validate_table
from distrib.ledger import Ledger, open_ledger
from distrib.model import Image, Post
from tests.conftest import FIXED_NOW


@pytest.fixture
def ledger(tmp_path: Path, clock: list[Any]) -> Iterator[Ledger]:
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        yield led


def make_post(n: int = 1, *, age: timedelta = timedelta(hours=1), **kw: Any) -> Post:
    fields: dict[str, Any] = {
        "key": f"https://news.example/posts/{n}",
        "url": f"https://news.example/posts/{n}",
        "title": f"Harbour council votes on the new ferry line, part {n}",
        "source": "newsroom",
        "summary": "The council met on Tuesday evening and, after a long debate about costs, "
        "timetables and the old pier, voted to start a ferry line across the bay next spring.",
        "author": "Ama Mensah",
        "published": FIXED_NOW - age,
        "tags": ("ferries", "local politics"),
        "categories": ("News",),
    }
    fields.update(kw)
    return Post(**fields)


@pytest.fixture
def post_factory() -> Callable[..., Post]:
    return make_post


class Env:
    """Settings, context and channels over one ledger, as the app builds them."""

    def __init__(self, tmp_path: Path, ledger: Ledger | None):
        self.tmp_path = tmp_path
        self.ledger = ledger
        self.channels_raw: list[dict[str, Any]] = []
        #: The tests written before the first-run baseline became the default share the
        #: posts they make on a fresh ledger: they set ``baseline = false`` unless a
        #: test says otherwise (tests/test_share_order.py tests the default).
        self.baseline: bool | None = False

    def settings(self, channels: list[dict[str, Any]] | None = None) -> Settings:
        cctx = Ctx(base_dir=self.tmp_path)
        extra = {} if self.baseline is None else {"baseline": self.baseline}
        validated = [
            validate_table(CHANNEL, extra | raw, f"channels[{i}]", cctx)
            for i, raw in enumerate(channels if channels is not None else self.channels_raw)
        ]
        assert not cctx.problems, cctx.problems
        data = {
            "site": {"name": "Harbour Light", "url": "https://news.example/", "language": "en"},
            "channels": validated,
            "templates": {"dir": None},
        }
        return Settings(path=self.tmp_path / "distrib.toml", data=data)

    def context(self, *, dry_run: bool = False, settings: Settings | None = None) -> Context:
        return Context(
            settings=settings or self.settings(), now=FIXED_NOW, ledger=self.ledger, dry_run=dry_run
        )

    def channels(
        self, *raw: dict[str, Any], dry_run: bool = False
    ) -> tuple[Context, list[Channel]]:
        self.channels_raw = list(raw)
        settings = self.settings()
        ctx = self.context(dry_run=dry_run, settings=settings)
        out = []
        for opts in settings.channels:
            cls = registry.load("distrib.channels", opts.type)
            out.append(cls(opts.name, opts, ctx))
        return ctx, out

    def channel(self, **raw: Any) -> Channel:
        raw.setdefault("name", raw["type"] + "-main")
        return self.channels(raw)[1][0]


@pytest.fixture
def env(tmp_path: Path, ledger: Ledger) -> Env:
    return Env(tmp_path, ledger)


__all__ = ["Image", "make_post"]
