"""`distrib check`: everything that can be validated without sending anything."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from . import registry
from .errors import DistribError
from .model import Image, Post

if TYPE_CHECKING:
    from .app import App


def sample_posts(app: App) -> list[Post]:
    """Two made-up posts to render the templates with (check fetches nothing)."""
    now = app.ctx.now
    site = app.settings.site.url.rstrip("/")
    return [
        Post(
            key=f"{site}/check/{i}",
            url=f"{site}/check/{i}",
            title=f"Template check post {i}",
            source="check",
            summary="A short summary used to check that the templates render.",
            content="<p>A short body used to check that the templates render.</p>",
            author="distrib",
            published=now - timedelta(hours=i),
            tags=("check",),
            categories=("News",),
            image=Image(f"{site}/check.png", "check image") if i == 1 else None,
        )
        for i in (1, 2)
    ]


def run_checks(app: App) -> tuple[list[str], list[str]]:
    """(problems, notes).  Problems make `distrib check` exit 2."""
    problems: list[str] = list(app.settings.missing_secrets())
    notes: list[str] = []
    problems += app.compliance_problems()
    posts = sample_posts(app)
    for letter in app.newsletters:
        try:
            rendered = app.render(letter, posts)
            app.check_template_compliance(rendered.html, rendered.template)
            notes.append(f"newsletter {letter.name}: templates render ({len(rendered.html) / 1024:.1f} KB)")
        except DistribError as e:
            problems.append(f"newsletter {letter.name}: {e}")
    groups = (
        ("distrib.sources", [s.type for s in app.settings.sources]),
        ("distrib.mailers", [app.settings.email.mailer]),
        ("distrib.channels", [c.type for c in app.settings.channels]),
    )
    for group, used in groups:
        for info in registry.describe(group):
            if info.name in used and not info.available:
                problems.append(info.hint)
    for channel in app.settings.channels:
        notes.append(f"channel {channel.name}: {channel.type}")
    return problems, notes
