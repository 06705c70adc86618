"""Every <style> block of every template and theme parses as CSS (tinycss2) with no error:
theme values are escaped for CSS, not for HTML, and validated when the config loads."""

from __future__ import annotations

import re

import pytest

from distrib.config import ConfigError
from distrib.render.css import css_value, font_stack

from .cases import make_posts
from .test_email import render

tinycss2 = pytest.importorskip("tinycss2", reason="pip install tinycss2 (in the test extras)")

THEMES = {
    "default": "",
    "dark mode off": "[theme]\ndark_mode = false\n",
    "fonts with quotes and scripts": (
        '[theme]\nfont_family = "\\"Noto Sans JP\\", \'Segoe UI\', Georgia, serif"\n'
        "heading_font_family = \"Playfair Display, 'Times New Roman', serif\"\n"
    ),
    "named colours": '[theme]\nbrand_color = "Navy"\naccent_color = "rebeccapurple"\nbackground_color = "#FFF"\n',
    "arabic site": "",
}


def errors_in(css: str) -> list[str]:
    """Every parse error anywhere in a style sheet: rules, at-rules, declarations."""
    found: list[str] = []

    def declarations(content) -> None:
        for d in tinycss2.parse_declaration_list(content, skip_whitespace=True, skip_comments=True):
            if d.type == "error":
                found.append(d.message)

    def rules(nodes) -> None:
        for r in nodes:
            if r.type == "error":
                found.append(r.message)
            elif r.type == "qualified-rule":
                declarations(r.content)
            elif r.type == "at-rule" and r.content is not None:
                rules(tinycss2.parse_rule_list(r.content, skip_whitespace=True, skip_comments=True))

    rules(tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=True))
    return found


def style_blocks(html: str) -> list[str]:
    return re.findall(r"<style[^>]*>(.*?)</style>", html, re.S | re.I)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("template", ["digest", "single"])
def test_every_style_block_parses(make_settings, theme: str, template: str) -> None:
    site = 'language = "ar"\n' if theme == "arabic site" else ""
    settings = make_settings(THEMES[theme], site=site)
    posts = make_posts(1 if template == "single" else 5)
    r = render(settings, posts, template=template)
    blocks = style_blocks(r.html)
    assert blocks
    for css in blocks:
        assert not re.search(r"&(#\d+|#x[0-9a-f]+|quot|amp|lt|gt|apos);", css, re.I), css
        assert errors_in(css) == [], css
    # The theme's values reached the style sheet as CSS.
    joined = "\n".join(blocks)
    if theme == "fonts with quotes and scripts":
        assert "font-family: 'Playfair Display', 'Times New Roman', serif;" in joined
    if theme == "named colours":
        assert "a { color: navy; }" in joined


def test_style_attributes_parse_too(make_settings) -> None:
    settings = make_settings(THEMES["fonts with quotes and scripts"])
    r = render(settings, make_posts(3))
    import html as html_mod

    for value in re.findall(r'style="([^"]*)"', r.html):
        css = html_mod.unescape(value)
        bad = [
            d
            for d in tinycss2.parse_declaration_list(css, skip_whitespace=True)
            if d.type == "error"
        ]
        assert bad == [], css


@pytest.mark.parametrize("theme", THEMES)
def test_the_archive_page_style_parses(make_settings, theme: str) -> None:
    from distrib.archive import _index_html

    settings = make_settings(THEMES[theme])
    page = _index_html(settings, [], "feed.xml")
    for css in style_blocks(page):
        assert errors_in(css) == [], css


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("brand_color", "red; } body { display:none"),
        ("brand_color", "#12345"),
        ("brand_color", "url(https://tracker.example/x)"),
        ("accent_color", "expression(alert(1))"),
        ("font_family", "Georgia; } a { color: red"),
        ("font_family", "Georgia</style><script>"),
        ("font_family", "'Unbalanced, serif"),
        ("heading_font_family", "Georgia, , serif"),
    ],
)
def test_theme_values_that_are_not_css_are_refused(make_settings, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_settings(f'[theme]\n{key} = "{value}"\n')
    assert f"theme.{key}" in str(e.value)


def test_css_value_escapes_what_could_end_a_declaration() -> None:
    assert css_value("#1f4e79") == "#1f4e79"
    assert css_value("a;}</style>") == "a\\3b \\7d \\3c \\2f style\\3e "
    assert css_value("'lone") == "\\27 lone"
    assert font_stack('"Noto Sans JP", serif') == "'Noto Sans JP', serif"
    assert font_stack("Times New Roman") == "'Times New Roman'"
    assert font_stack("-apple-system, BlinkMacSystemFont") == "-apple-system, BlinkMacSystemFont"
