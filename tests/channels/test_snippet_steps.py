"""The composer's rarer steps: no template at all, and variants that do not show the
summary or the title (nothing to trim there, so the next step decides)."""

from __future__ import annotations

import jinja2
import pytest

from distrib.errors import TemplateError
from distrib.render.length import x_length
from distrib.render.snippets import SnippetError, compose
from tests.channels.conftest import make_post

ENV = jinja2.Environment(
    loader=jinja2.DictLoader(
        {
            "share/summary.j2": "{{ summary }}\n\n{{ link }}",
            "share/link.j2": "{{ link }}",
            "share/title.j2": "{{ title }}\n\n{{ link }}",
        }
    ),
    autoescape=False,
)


def _compose(names: list[str], limit: int, link: str, **post: str) -> str:
    p = make_post(1, tags=(), **post)
    return compose(
        p, channel="test", template_names=names, env=ENV, counter=x_length, limit=limit,
        hashtags=0, utm=None, link_url=link,
    ).text  # fmt: skip


def test_no_template_names_the_channel_and_the_fix() -> None:
    with pytest.raises(TemplateError, match=r"channel 'test': no share template; add templates"):
        _compose([], 280, "https://news.example/posts/1")


def test_a_variant_without_the_title_is_not_cut_to_fit() -> None:
    link = "https://news.example.org/" + "p" * 40
    # too little of the summary would be left beside the link: the link-only variant
    assert _compose(["share/summary.j2", "share/link.j2"], 40, link) == link
    # the last variant shows no title, so there is no title to cut: the post cannot fit
    with pytest.raises(SnippetError, match=r"cannot fit channel test \(23 > 20\)"):
        _compose(["share/summary.j2", "share/link.j2"], 20, link)


def test_a_variant_without_the_summary_goes_straight_to_the_title_cut() -> None:
    title = "Harbour council votes on the new ferry line " * 10
    text = _compose(["share/title.j2"], 120, "https://news.example/posts/1", title=title.strip())
    assert text.endswith("…\n\nhttps://news.example/posts/1")
    assert x_length(text) <= 120
