"""The Markdown source on sites laid out as Hugo, Jekyll and Eleventy lay them out.

The expected posts and URLs are written from each generator's documentation; the
``test_*_real_build`` tests build the same fixture with the real generator (Debian
packages ``hugo`` and ``jekyll``) and require that distrib emits exactly the pages it
published, at the URLs it published them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from distrib.adapters import Context
from distrib.model import Post

from .conftest import source_of

SITES = Path(__file__).resolve().parent / "sites"
HUGO_BASE = "https://quill.example/blog/"
JEKYLL_BASE = "https://quill.example/blog/"

MakeCtx = Callable[..., Context]


def copy_site(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(SITES / name, dest)
    return dest


def fetch(make_ctx: MakeCtx, path: Path, base: str, extra: str = "") -> list[Post]:
    ctx = make_ctx(
        f'[[sources]]\nname = "md"\ntype = "markdown"\npath = "{path}"\nbase_url = "{base}"\n{extra}\n'
    )
    return source_of(ctx).fetch()


def urls(posts: list[Post]) -> set[str]:
    return {p.url for p in posts}


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


# --- Hugo -------------------------------------------------------------------------------

#: What Hugo publishes of tests/sources/sites/hugo, from Hugo's docs ("Content
#: organization", "Page bundles", "Front matter", "Build options", "URL management",
#: "Permalinks"): drafts, scheduled, expired, headless, build-excluded pages and bundle
#: resources are not pages; URLs are the content path (lower-cased, '.' and '_' kept),
#: the notes section follows [permalinks]; an undated page is left out by default.
HUGO_EXPECTED = {
    "posts/first-post/",
    "posts/my_post.v2/",
    "posts/2025-10-03-dated-name/",
    "posts/publish-lower/",
    "posts/list-local/",
    "posts/bundle/",
    "posts/json-post/",
    "posts/2025/nested/",
    "posts/translated/",
    "special/place/",
    "posts/mixedcase/",
    "posts/custom_slug/",
    "posts/caf%C3%A9-ol%C3%A9/",
    "posts/whats-new-next/",
    "notes/2025/10/on-permalinks/",
}


def test_hugo_site(tmp_path: Path, make_ctx: MakeCtx) -> None:
    site = copy_site("hugo", tmp_path)
    posts = fetch(make_ctx, site, HUGO_BASE)
    assert urls(posts) == {HUGO_BASE + u for u in HUGO_EXPECTED}
    by_url = {p.url[len(HUGO_BASE) :]: p for p in posts}
    assert by_url["posts/publish-lower/"].published == datetime(2025, 10, 5, 8, 0, tzinfo=UTC)
    assert by_url["posts/bundle/"].published == datetime(2025, 10, 6, 8, 0, tzinfo=UTC)
    assert by_url["posts/bundle/"].image is not None
    assert by_url["posts/bundle/"].image.url == HUGO_BASE + "posts/bundle/harbour.jpg"
    assert by_url["posts/json-post/"].title == "JSON front matter"
    assert by_url["posts/json-post/"].tags == ("json",)
    assert "A post with JSON front matter." in by_url["posts/json-post/"].content


def test_hugo_site_from_its_content_folder(tmp_path: Path, make_ctx: MakeCtx) -> None:
    """path may name the content folder: the config above it still says "hugo"."""
    site = copy_site("hugo", tmp_path)
    assert urls(fetch(make_ctx, site / "content", HUGO_BASE)) == {
        HUGO_BASE + u for u in HUGO_EXPECTED
    }


def test_hugo_undated_first_seen(tmp_path: Path, make_ctx: MakeCtx) -> None:
    site = copy_site("hugo", tmp_path)
    posts = fetch(make_ctx, site, HUGO_BASE, 'undated = "first-seen"')
    undated = {p.url for p in posts if p.published is None}
    # Hugo dates an undated page at Go's zero time: year 1 in the notes' permalink.
    assert undated == {HUGO_BASE + "about/", HUGO_BASE + "notes/1/01/undated/"}


def hugo_site(tmp_path: Path, files: dict[str, str], config: str = "") -> Path:
    root = tmp_path / "site"
    write(root, "hugo.toml", f'baseURL = "{HUGO_BASE}"\n{config}')
    for rel, text in files.items():
        write(root, "content/" + rel, text)
    return root


@pytest.mark.parametrize(
    ("rel", "text", "url"),
    [
        # "Front matter": publishDate decides, and is what the post is dated by.
        ("posts/a.md", "---\ndate: 2026-11-01\npublishDate: 2027-03-01\n---\nx\n", None),
        ("posts/a.md", "---\ndate: 2026-11-01\npublishdate: 2027-03-01\n---\nx\n", None),
        ("posts/a.md", "---\nDate: 2026-11-01\n---\nx\n", "posts/a/"),
        ("posts/a.md", "---\ndate: 2026-11-01\nDraft: true\n---\nx\n", None),
        ("posts/a.md", "---\ndate: 2026-11-01\ndraft: 'true'\n---\nx\n", None),
        ("posts/a.md", "---\ndate: 2026-11-01\npublished: 'false'\n---\nx\n", None),
        ("posts/a.md", "---\ndate: 2026-11-01\nexpiryDate: 2026-11-20\n---\nx\n", None),
        ("posts/a.md", "---\ndate: 2026-11-01\nexpirydate: 2027-11-20\n---\nx\n", "posts/a/"),
        # "Build options" (build since Hugo 0.145, _build before).
        ("posts/a.md", "---\ndate: 2026-11-01\nbuild:\n  render: never\n---\nx\n", None),
        ("posts/a.md", "---\ndate: 2026-11-01\nbuild:\n  list: never\n---\nx\n", None),
        ("posts/a.md", "---\ndate: 2026-11-01\n_build:\n  render: false\n---\nx\n", None),
        ("posts/b/index.md", "---\ndate: 2026-11-01\nheadless: true\n---\nx\n", None),
        ("posts/a.md", '{\n"title": "J", "date": "2026-11-01", "draft": true\n}\nx\n', None),
        ("posts/a.md", '{\n"title": "J", "date": "2026-11-01"\n}\nx\n', "posts/a/"),
        # "URL management": the content path is the URL, nested sections stay nested.
        ("posts/2024/x.md", "---\ndate: 2026-11-01\n---\nx\n", "posts/2024/x/"),
        ("posts/my_post.v2.md", "---\ndate: 2026-11-01\n---\nx\n", "posts/my_post.v2/"),
        ("posts/2026-11-01-x.md", "---\ndate: 2026-11-01\n---\nx\n", "posts/2026-11-01-x/"),
        ("posts/b/index.en.md", "---\ndate: 2026-11-01\n---\nx\n", "posts/b/"),
        ("posts/a.md", "---\ndate: 2026-11-01\nurl: /special/place/\n---\nx\n", "special/place/"),
        ("posts/a.md", "---\ndate: 2026-11-01\nslug: Other_Name\n---\nx\n", "posts/other_name/"),
    ],
)
def test_hugo_rules(
    tmp_path: Path, make_ctx: MakeCtx, rel: str, text: str, url: str | None
) -> None:
    root = hugo_site(tmp_path, {rel: text, "posts/_index.md": "---\ntitle: Posts\n---\n"})
    posts = fetch(make_ctx, root, HUGO_BASE)
    assert urls(posts) == ({HUGO_BASE + url} if url else set())


def test_hugo_publish_date_is_the_date(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = hugo_site(
        tmp_path, {"posts/a.md": "---\ndate: 2026-10-01\npublishDate: 2026-11-01\n---\nx\n"}
    )
    (post,) = fetch(make_ctx, root, HUGO_BASE)
    assert post.published == datetime(2026, 11, 1, tzinfo=UTC)


def test_hugo_bundle_resources_are_not_pages(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = hugo_site(
        tmp_path,
        {
            "posts/b/index.md": "---\ndate: 2026-11-01\n---\nx\n",
            "posts/b/notes.md": "---\ndate: 2026-11-01\n---\nx\n",
            "posts/b/deeper/more.md": "---\ndate: 2026-11-01\n---\nx\n",
            "posts/branch/_index.md": "---\ntitle: Branch\n---\n",
            "posts/branch/page.md": "---\ndate: 2026-11-01\n---\nx\n",
        },
    )
    assert urls(fetch(make_ctx, root, HUGO_BASE)) == {
        HUGO_BASE + "posts/b/",
        HUGO_BASE + "posts/branch/page/",
    }


def test_hugo_filename_dates_when_configured(tmp_path: Path, make_ctx: MakeCtx) -> None:
    """ "Front matter" > configure dates: with :filename the prefix is the date and the
    rest of the name the slug."""
    root = hugo_site(
        tmp_path,
        {"posts/2026-11-02-named.md": "---\ntitle: N\n---\nx\n"},
        '[frontmatter]\ndate = [":filename", ":default"]\n',
    )
    (post,) = fetch(make_ctx, root, HUGO_BASE)
    assert post.url == HUGO_BASE + "posts/named/"
    assert post.published == datetime(2026, 11, 2, tzinfo=UTC)


def test_hugo_front_matter_url_template_refused(
    tmp_path: Path, make_ctx: MakeCtx, caplog: Any
) -> None:
    root = hugo_site(
        tmp_path,
        {
            "posts/a.md": "---\ndate: 2026-11-01\nurl: /:year/:title/\n---\nx\n",
            "posts/b.md": "---\ndate: 2026-11-01\n---\nx\n",
        },
    )
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        assert urls(fetch(make_ctx, root, HUGO_BASE)) == {HUGO_BASE + "posts/b/"}
    (line,) = [r.getMessage() for r in caplog.records if "posts/a.md" in r.getMessage()]
    assert "is a template" in line and "\n" not in line


def test_hugo_multilingual(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = hugo_site(
        tmp_path,
        {
            "posts/b/index.en.md": "---\ndate: 2026-11-01\n---\nx\n",
            "posts/b/index.fr.md": "---\ndate: 2026-11-01\n---\nx\n",
        },
        'defaultContentLanguage = "en"\n[languages.en]\nweight = 1\n[languages.fr]\nweight = 2\n',
    )
    assert urls(fetch(make_ctx, root, HUGO_BASE)) == {
        HUGO_BASE + "posts/b/",
        HUGO_BASE + "fr/posts/b/",
    }


# --- Jekyll -----------------------------------------------------------------------------

#: What Jekyll publishes of tests/sources/sites/jekyll (Jekyll docs "Posts", "Drafts",
#: "Permalinks", "Front Matter"): only _posts, not _drafts, _includes, README or pages;
#: the date style /:categories/:year/:month/:day/:title:output_ext, categories from the
#: folders above _posts and from front matter (lower-cased), :title keeping its case.
JEKYLL_EXPECTED = {
    "news/2025/10/01/Welcome-to-Jekyll.html",
    "2025/10/02/plain.html",
    "blog/travel/2025/10/03/by-folder.html",
    "guides/own-permalink/",
    "2025/10/08/date-override.html",
    "2025/10/09/Custom-Slug.html",
    "2025/10/10/in-subfolder.html",
    "2025/10/11/my_post.v2.html",
}


def test_jekyll_site(tmp_path: Path, make_ctx: MakeCtx) -> None:
    site = copy_site("jekyll", tmp_path)
    posts = fetch(make_ctx, site, JEKYLL_BASE, 'undated = "first-seen"')
    assert urls(posts) == {JEKYLL_BASE + u for u in JEKYLL_EXPECTED}
    by_url = {p.url[len(JEKYLL_BASE) :]: p for p in posts}
    assert by_url["blog/travel/2025/10/03/by-folder.html"].categories == ("blog", "travel")
    assert by_url["2025/10/08/date-override.html"].published == datetime(
        2025, 10, 8, 10, 0, tzinfo=UTC
    )


def test_jekyll_posts_folder_as_path(tmp_path: Path, make_ctx: MakeCtx) -> None:
    site = copy_site("jekyll", tmp_path)
    got = urls(fetch(make_ctx, site / "_posts", JEKYLL_BASE))
    assert got == {JEKYLL_BASE + u for u in JEKYLL_EXPECTED if "travel" not in u}


#: Jekyll docs, "Permalinks" > "Built-in formats", for the post of 2025-10-01 (a
#: Wednesday, day 274, ISO week 40) in the category "news".
JEKYLL_STYLES = {
    "date": "news/2025/10/01/Welcome-to-Jekyll.html",
    "pretty": "news/2025/10/01/Welcome-to-Jekyll/",
    "ordinal": "news/2025/274/Welcome-to-Jekyll.html",
    "weekdate": "news/2025/W40/Wed/Welcome-to-Jekyll.html",
    "none": "news/Welcome-to-Jekyll.html",
    "/:year/:i_month/:i_day/:slug:output_ext": "2025/10/1/welcome-to-jekyll.html",
    "/:short_year/:long_month/:long_day/:slugified_categories/:title/": "25/October/Wednesday/news/Welcome-to-Jekyll/",
}


def set_jekyll_permalink(site: Path, style: str) -> None:
    config = site / "_config.yml"
    config.write_text(re.sub(r"(?m)^permalink: .*$", f'permalink: "{style}"', config.read_text()))


@pytest.mark.parametrize("style", list(JEKYLL_STYLES))
def test_jekyll_permalink_styles(tmp_path: Path, make_ctx: MakeCtx, style: str) -> None:
    site = copy_site("jekyll", tmp_path)
    set_jekyll_permalink(site, style)
    posts = fetch(make_ctx, site, JEKYLL_BASE)
    welcome = next(p for p in posts if p.title == "Welcome to Jekyll")
    assert welcome.url == JEKYLL_BASE + JEKYLL_STYLES[style]


def test_jekyll_unknown_placeholder_refused(tmp_path: Path, make_ctx: MakeCtx, caplog: Any) -> None:
    root = tmp_path / "site"
    write(root, "_config.yml", "permalink: date\n")
    write(root, "_posts/2025-10-01-a.md", "---\npermalink: /:nonsense/:title/\n---\nx\n")
    write(
        root, "_posts/2025-10-02-b.md", "---\npermalink: '/{{ page.title | slugify }}/'\n---\nx\n"
    )
    write(root, "_posts/2025-10-03-c.md", "---\ntitle: C\n---\nx\n")
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        assert urls(fetch(make_ctx, root, JEKYLL_BASE)) == {JEKYLL_BASE + "2025/10/03/c.html"}
    lines = [r.getMessage() for r in caplog.records]
    assert any("2025-10-01-a.md" in m and ":nonsense" in m for m in lines)
    assert any("2025-10-02-b.md" in m and "Liquid template" in m for m in lines)


def test_jekyll_collections(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = tmp_path / "site"
    write(
        root,
        "_config.yml",
        "collections:\n  recipes:\n    output: true\n  hidden:\n    output: false\n",
    )
    write(root, "_recipes/soup/Leek Soup.md", "---\ntitle: Soup\ndate: 2025-10-01\n---\nx\n")
    write(root, "_hidden/x.md", "---\ndate: 2025-10-01\n---\nx\n")
    write(root, "_unlisted/y.md", "---\ndate: 2025-10-01\n---\nx\n")
    got = urls(fetch(make_ctx, root, JEKYLL_BASE, 'collections = ["recipes", "hidden"]'))
    assert got == {JEKYLL_BASE + "recipes/soup/Leek%20Soup.html"}


# --- Eleventy ---------------------------------------------------------------------------

#: Eleventy docs, "Permalinks" (default output: the input path as a folder; index and a
#: file named like its folder are the folder; permalink: false writes nothing),
#: "Collections" (eleventyExcludeFromCollections) and "Content dates" (a date in the
#: file name is the date, the name itself stays in the URL).
ELEVENTY_EXPECTED = {
    "posts/first/",
    "posts/2025-10-02-dated-name/",
    "posts/bundle/",
    "posts/same/",
    "articles/cafe-and-creme/",
    "p/file-slug/",
}


def test_eleventy_site(tmp_path: Path, make_ctx: MakeCtx, caplog: Any) -> None:
    site = copy_site("eleventy", tmp_path)
    write(
        site, "node_modules/pkg/README.md", "---\ntitle: A dependency\ndate: 2025-10-10\n---\nx\n"
    )
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        posts = fetch(make_ctx, site, "https://quill.example/")
    assert urls(posts) == {"https://quill.example/" + u for u in ELEVENTY_EXPECTED}
    dated = next(p for p in posts if p.title == "Dated by its name")
    assert dated.published == datetime(2025, 10, 2, tzinfo=UTC)
    (line,) = [r.getMessage() for r in caplog.records if "unsupported.md" in r.getMessage()]
    assert "cannot fill in" in line and "\n" not in line


def test_generator_option_wins_over_detection(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = tmp_path / "site"
    write(root, "posts/a.md", "---\ndate: 2025-10-01\npermalink: false\n---\nx\n")
    write(root, "posts/b.md", "---\ndate: 2025-10-01\n---\nx\n")
    assert urls(fetch(make_ctx, root, "https://e.example/", 'generator = "eleventy"')) == {
        "https://e.example/posts/b/"
    }


# --- no generator -----------------------------------------------------------------------


def test_generic_folder_skips_what_no_site_publishes(
    tmp_path: Path, make_ctx: MakeCtx, caplog: Any
) -> None:
    root = tmp_path / "site"
    write(root, "_posts/2025-10-01-kept.md", "---\ntitle: Kept\n---\nx\n")
    write(root, "_drafts/a-draft.md", "---\ntitle: Draft\n---\nx\n")
    write(root, "_includes/snippet.md", "Some text.\n")
    write(root, "README.md", "# Readme\n")
    write(root, "notes/undated.md", "---\ntitle: Undated\n---\nx\n")
    write(
        root,
        "notes/permalink.md",
        "---\ntitle: T\ndate: 2025-10-02\ncategories: [a]\npermalink: /:categories/:title/\n---\nx\n",
    )
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        posts = fetch(make_ctx, root, "https://g.example/")
    assert urls(posts) == {"https://g.example/2025/10/kept/", "https://g.example/a/permalink/"}
    (line,) = [r.getMessage() for r in caplog.records if "without a date" in r.getMessage()]
    assert "notes/undated.md" in line and 'undated = "first-seen"' in line


def test_generic_date_is_publish_date(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = tmp_path / "site"
    write(root, "a.md", "---\ntitle: A\ndate: 2026-11-01\npublishDate: 2027-03-01\n---\nx\n")
    assert fetch(make_ctx, root, "https://g.example/") == []


# --- the real generators ----------------------------------------------------------------


def _need(program: str) -> str:
    found = shutil.which(program)
    if not found:
        pytest.skip(f"{program} is not installed; install it with: apt-get install {program}")
    return found


def _env() -> dict[str, str]:
    return {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "JEKYLL_ENV": "production"}


def _hugo_published(out: Path) -> tuple[set[str], set[str]]:
    """(dated, undated) page links of every RSS file Hugo wrote (section lists excluded)."""
    items: dict[str, str] = {}
    channels: set[str] = set()
    for rss in out.rglob("index.xml"):
        channel = ET.parse(rss).getroot().find("channel")
        assert channel is not None
        channels.add(channel.findtext("link") or "")
        for item in channel.iter("item"):
            link = item.findtext("link") or ""
            if link:  # build.render never: listed without a page
                items[link] = item.findtext("pubDate") or ""
    pages = {link: date for link, date in items.items() if link not in channels}
    dated = {link for link, date in pages.items() if " 0001 " not in date}
    return dated, set(pages) - dated


@pytest.mark.parametrize("ugly", [False, True])
def test_hugo_real_build(tmp_path: Path, make_ctx: MakeCtx, ugly: bool) -> None:
    hugo = _need("hugo")
    site = copy_site("hugo", tmp_path)
    if ugly:  # "URL management" > ugly URLs: /posts/first-post.html
        (site / "hugo.toml").write_text("uglyURLs = true\n" + (site / "hugo.toml").read_text())
    out = tmp_path / "public"
    subprocess.run(
        [hugo, "--quiet", "--source", str(site), "--destination", str(out)],
        check=True,
        env=_env(),
        timeout=120,
    )
    dated, undated = _hugo_published(out)
    assert urls(fetch(make_ctx, site, HUGO_BASE)) == dated
    assert urls(fetch(make_ctx, site, HUGO_BASE, 'undated = "first-seen"')) == dated | undated
    expected = {u[:-1] + ".html" if ugly and u != "special/place/" else u for u in HUGO_EXPECTED}
    assert {u[len(HUGO_BASE) :] for u in dated} == expected  # the docs and the build agree


def _jekyll_published(out: Path, base: str) -> set[str]:
    """The URL of every page built with the fixture's post layout."""
    found = set()
    for page in out.rglob("*.html"):
        if "distrib-fixture: a post" in page.read_text(encoding="utf-8"):
            rel = page.relative_to(out).as_posix()
            rel = rel[: -len("index.html")] if rel.endswith("index.html") else rel
            found.add(base + "/".join(_quote_segment(s) for s in rel.split("/")))
    return found


def _quote_segment(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="!$&'()*+,;=:@-._~")


@pytest.mark.parametrize("style", ["date", "pretty", "ordinal", "weekdate", "none"])
def test_jekyll_real_build(tmp_path: Path, make_ctx: MakeCtx, style: str) -> None:
    jekyll = _need("jekyll")
    site = copy_site("jekyll", tmp_path)
    set_jekyll_permalink(site, style)
    out = tmp_path / "_site"
    subprocess.run(
        [jekyll, "build", "--quiet", "--source", str(site), "--destination", str(out)],
        check=True, env=_env(), timeout=120, cwd=site,
    )  # fmt: skip
    published = _jekyll_published(out, JEKYLL_BASE)
    assert len(published) == len(JEKYLL_EXPECTED)
    assert urls(fetch(make_ctx, site, JEKYLL_BASE)) == published


@pytest.mark.parametrize(
    ("config", "generator"),
    [
        ("hugo.toml", "hugo"),
        ("hugo.yaml", "hugo"),
        ("_config.yml", "jekyll"),
        (".eleventy.js", "eleventy"),
        ("eleventy.config.js", "eleventy"),
        ("eleventy.config.mjs", "eleventy"),
    ],
)
def test_generator_detected_from_its_config_file(
    tmp_path: Path, config: str, generator: str
) -> None:
    from distrib.sources.markdown import find_site

    root = tmp_path / "site"
    write(root, config, "\n")
    assert find_site(root).generator == generator
    (root / "content").mkdir()
    assert find_site(root / "content").generator == generator  # the config one folder up


def test_hugo_legacy_config_toml_needs_hugo_folders(tmp_path: Path) -> None:
    from distrib.sources.markdown import find_site

    root = tmp_path / "site"
    write(root, "config.toml", 'baseURL = "https://x.example/"\n')
    assert find_site(root).generator == ""  # any project may have a config.toml
    (root / "content").mkdir()
    assert find_site(root).generator == "hugo"


def test_hugo_cascade_from_sections_and_config(tmp_path: Path, make_ctx: MakeCtx) -> None:
    """ "Front matter" > cascade: a section's _index.md (or the site config) hands its
    draft / build values down to every page below it; a page's own value wins."""
    root = hugo_site(
        tmp_path,
        {
            "drafts/_index.md": "---\ntitle: D\ncascade:\n  draft: true\n---\n",
            "drafts/a.md": "---\ndate: 2026-11-01\n---\nx\n",
            "drafts/deeper/b.md": "---\ndate: 2026-11-01\n---\nx\n",
            "drafts/own.md": "---\ndate: 2026-11-01\ndraft: false\n---\nx\n",
            "hidden/_index.md": "---\ntitle: H\ncascade:\n  _build:\n    list: never\n---\n",
            "hidden/c.md": "---\ndate: 2026-11-01\n---\nx\n",
            "posts/d.md": "---\ndate: 2026-11-01\n---\nx\n",
        },
    )
    assert urls(fetch(make_ctx, root, HUGO_BASE)) == {
        HUGO_BASE + "drafts/own/",
        HUGO_BASE + "posts/d/",
    }


def test_hugo_build_drafts_and_expired_when_the_site_says_so(
    tmp_path: Path, make_ctx: MakeCtx
) -> None:
    files = {
        "posts/a.md": "---\ndate: 2026-11-01\ndraft: true\n---\nx\n",
        "posts/b.md": "---\ndate: 2026-11-01\nexpiryDate: 2026-11-02\n---\nx\n",
    }
    root = hugo_site(tmp_path, files, "buildDrafts = true\nbuildExpired = true\n")
    assert urls(fetch(make_ctx, root, HUGO_BASE)) == {
        HUGO_BASE + "posts/a/",
        HUGO_BASE + "posts/b/",
    }


def test_jekyll_unpublished_config(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = tmp_path / "site"
    write(root, "_config.yml", "unpublished: true\n")
    write(root, "_posts/2025-10-01-a.md", "---\npublished: false\n---\nx\n")
    assert urls(fetch(make_ctx, root, JEKYLL_BASE)) == {JEKYLL_BASE + "2025/10/01/a.html"}


def test_jekyll_collections_dir_is_not_a_category(tmp_path: Path, make_ctx: MakeCtx) -> None:
    """Jekyll, "Collections" > collections_dir: _posts moves into it; it names no category."""
    root = tmp_path / "site"
    write(root, "_config.yml", "collections_dir: my_collections\n")
    write(root, "my_collections/_posts/2025-10-01-a.md", "---\ntitle: A\n---\nx\n")
    write(root, "my_collections/news/_posts/2025-10-02-b.md", "---\ntitle: B\n---\nx\n")
    got = urls(fetch(make_ctx, root, JEKYLL_BASE))
    assert got == {JEKYLL_BASE + "2025/10/01/a.html", JEKYLL_BASE + "news/2025/10/02/b.html"}
    # A collections_dir starting with "_" is never read by Jekyll: nothing is published.
    (root / "my_collections").rename(root / "_my_collections")
    write(root, "_config.yml", "collections_dir: _my_collections\n")
    assert fetch(make_ctx, root, JEKYLL_BASE) == []


def test_hugo_path_deep_in_the_content_folder(tmp_path: Path, make_ctx: MakeCtx) -> None:
    root = hugo_site(tmp_path, {"posts/2024/x.md": "---\ndate: 2025-11-01\n---\nx\n"})
    assert urls(fetch(make_ctx, root / "content" / "posts" / "2024", HUGO_BASE)) == {
        HUGO_BASE + "posts/2024/x/"
    }
