"""The Markdown source on real folders: Hugo (TOML, bundles), Jekyll (YAML, dated names)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from distrib.errors import ConfigError, SourceError
from distrib.sources.markdown import split_front_matter

from .conftest import source_of


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "content"
    write(
        root,
        "posts/2026-11-20-jekyll-style.md",
        """
        ---
        layout: post
        title: "Jekyll &amp; friends: a dated file name"
        category: releases
        tags: jekyll ruby
        author: Rui Tanaka
        image: /assets/img/cover.jpg
        image_alt: A printing press
        ---
        The opening paragraph, shown as the summary.

        <!--more-->

        The rest, with a [relative link](../other/) and a table:

        | Port | Boats |
        |------|-------|
        | East | 12    |

        ```yaml
        ---
        this: is not front matter
        ---
        ```

        <script>alert(1)</script>
        """,
    )
    write(
        root,
        "posts/hugo-bundle/index.md",
        """
        +++
        title = "Hugo bundle with TOML"
        date = 2026-11-25T10:00:00+01:00
        lastmod = 2026-11-26T08:00:00Z
        tags = ["hugo", "go"]
        categories = ["guides"]
        summary = "Front-matter **summary** wins."
        [author]
        name = "Ines Duarte"
        +++

        Body with an image: ![Harbour at dusk](harbour.jpg)

        ---

        A rule above is body, not front matter.
        """,
    )
    write(
        root,
        "notes/untitled.markdown",
        """
        ---
        date: 2026-11-27 09:15
        tags: [micro]
        ---
        Just a short note without a title. It has two sentences.
        """,
    )
    write(
        root, "posts/draft.md", "---\ntitle: Draft\ndate: 2026-11-01\ndraft: true\n---\nNot yet.\n"
    )
    write(root, "posts/unpublished.md", "---\ntitle: Hidden\npublished: false\n---\nNo.\n")
    write(root, "posts/future.md", "---\ntitle: Tomorrow\ndate: 2027-01-01\n---\nLater.\n")
    write(root, "posts/_index.md", "---\ntitle: Posts\n---\nThe list page.\n")
    write(root, "posts/broken.md", "---\ntitle: [unclosed\n---\nBody.\n")
    write(root, "posts/no-date.md", "# Heading as title\n\nNo front matter at all.\n")
    write(
        root,
        "posts/custom-url.md",
        "---\ntitle: Custom\ndate: 2026-11-10\nurl: /special/place/\n---\nHere.\n",
    )
    (root / "posts" / "readme.txt").write_text("not markdown")
    return root


def md_source(make_ctx, extra: str = ""):
    ctx = make_ctx(
        '[[sources]]\nname = "md"\ntype = "markdown"\npath = "content"\n'
        f'base_url = "https://quill.example/"\n{extra}'
    )
    return source_of(ctx)


def by_title(posts, start: str):
    return next(p for p in posts if p.title.startswith(start))


def test_folder_of_posts(site: Path, make_ctx) -> None:
    posts = md_source(make_ctx, 'undated = "first-seen"').fetch()
    assert sorted(p.title for p in posts) == [
        "Custom",
        "Heading as title",
        "Hugo bundle with TOML",
        "Jekyll & friends: a dated file name",
        "Just a short note without a title.",
    ]
    jek = by_title(posts, "Jekyll")
    assert jek.published == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # the file-name prefix
    assert jek.url == "https://quill.example/2026/11/jekyll-style/"
    assert jek.key == jek.url
    assert jek.tags == ("jekyll", "ruby") and jek.categories == ("releases",)
    assert jek.author == "Rui Tanaka"
    assert jek.summary == "The opening paragraph, shown as the summary."
    assert (
        jek.image.url == "https://quill.example/assets/img/cover.jpg"
        and jek.image.alt == "A printing press"
    )
    assert "<table>" in jek.content and "<th>Port</th>" in jek.content
    assert "this: is not front matter" in jek.content  # the fenced --- did not confuse the split
    assert 'href="https://quill.example/2026/11/other/"' in jek.content
    assert "<script" not in jek.content

    hugo = by_title(posts, "Hugo")
    assert hugo.published == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert hugo.updated == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert hugo.url == "https://quill.example/2026/11/hugo-bundle/"
    assert hugo.author == "Ines Duarte"
    assert hugo.summary == "Front-matter summary wins."
    assert hugo.image.url == "https://quill.example/2026/11/hugo-bundle/harbour.jpg"
    assert hugo.image.alt == "Harbour at dusk"
    assert "<hr/>" in hugo.content and "A rule above is body" in hugo.content

    note = by_title(posts, "Just a short note")
    assert note.published == datetime(2026, 11, 27, 9, 15, tzinfo=UTC)  # site.timezone is UTC
    assert note.tags == ("micro",)

    undated = by_title(posts, "Heading as title")
    assert undated.published is None
    assert undated.url == "https://quill.example/no-date/"

    assert by_title(posts, "Custom").url == "https://quill.example/special/place/"


def test_permalink_pattern(site: Path, make_ctx) -> None:
    posts = md_source(make_ctx, 'permalink = "/{section}/{year}-{month}-{day}/{slug}.html"').fetch()
    assert by_title(posts, "Hugo").url == "https://quill.example/posts/2026-11-25/hugo-bundle.html"
    assert by_title(posts, "Just").url == "https://quill.example/notes/2026-11-27/untitled.html"


def test_unknown_placeholder_is_a_config_error(site: Path, make_ctx) -> None:
    with pytest.raises(ConfigError, match=r"unknown placeholder \{title\}"):
        md_source(make_ctx, 'permalink = "/{title}/"')


def test_missing_folder(make_ctx) -> None:
    with pytest.raises(
        SourceError,
        match=r"source 'md': the Markdown folder .*content does not exist; check the path",
    ):
        md_source(make_ctx).fetch()


@pytest.mark.parametrize(
    ("text", "fm", "body"),
    [
        ("---\na: 1\n---\nbody\n---\nmore\n", {"a": 1}, "body\n---\nmore\n"),
        ("+++\na = 1\n+++\n+++ not a closer\n", {"a": 1}, "+++ not a closer\n"),
        ("no front matter\n---\n", {}, "no front matter\n---\n"),
        ("\ufeff---\r\ntitle: x\r\n---\r\nbody", {"title": "x"}, "body"),
        ("---\n---\nempty\n", {}, "empty\n"),
    ],
)
def test_split_front_matter(text: str, fm: dict, body: str) -> None:
    got_fm, got_body, _ = split_front_matter(text)
    assert (got_fm, got_body) == (fm, body)


@pytest.mark.parametrize("text", ["---\ntitle: x\n", "---\n- a list\n---\n", "+++\n= bad\n+++\n"])
def test_split_front_matter_errors(text: str) -> None:
    with pytest.raises(ValueError):
        split_front_matter(text)


def test_dates_without_a_zone_are_in_the_site_zone(tmp_path: Path, make_ctx) -> None:
    root = tmp_path / "content"
    write(root, "a.md", "---\ntitle: Kyiv morning\ndate: 2026-11-27 09:00\n---\nBody.\n")
    write(root, "2026-11-26-b.md", "---\ntitle: Dated by name\n---\nBody.\n")
    ctx = make_ctx(
        '[[sources]]\nname = "md"\ntype = "markdown"\npath = "content"\nbase_url = "https://kyiv.example/blog/"\n',
        site='timezone = "Europe/Kyiv"',
    )
    posts = source_of(ctx).fetch()
    morning = by_title(posts, "Kyiv")
    assert morning.published == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # UTC+2 in November
    assert morning.url == "https://kyiv.example/blog/2026/11/a/"
    named = by_title(posts, "Dated")
    assert named.published == datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
    assert named.url == "https://kyiv.example/blog/2026/11/b/"


def test_only_broken_files_is_an_error(tmp_path: Path, make_ctx) -> None:
    root = tmp_path / "content"
    write(root, "a.md", "---\ntitle: [unclosed\n---\nBody.\n")
    write(root, "b.md", "+++\ntitle = \n+++\nBody.\n")
    with pytest.raises(SourceError) as e:
        md_source(make_ctx).fetch()
    text = str(e.value)
    assert text.startswith("source 'md': a.md: YAML front matter does not parse at line")
    assert text.endswith("(and 1 more files); fix the front matter") and "\n" not in text
