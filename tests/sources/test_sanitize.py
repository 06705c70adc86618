"""distrib.sanitize: the allowlist, URLs, MJML-safety and the text helpers."""

from __future__ import annotations

import mjml
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distrib.sanitize import absolute_http_url, clean_html, excerpt, html_to_text, one_line

BASE = "https://harbourlight.example/2026/05/story/"

HOSTILE = (
    '<p onclick="steal()">Hi <a href="javascript:alert(1)">j</a>'
    '<a href="java&#10;script:alert(1)">k</a><a href=" JAVASCRIPT:x">l</a>'
    "<script>alert(1)</script><iframe src=https://evil.example/>t</iframe>"
    '<img src="x" onerror="alert(1)"><img src="data:image/png;base64,AAAA">'
    '<svg onload="x()"><circle/></svg><style>p{color:red}</style>'
    '<a href="vbscript:msgbox">v</a><object data="x"></object>'
    '<p style="background:url(javascript:x)">s</p></p>'
)


def assert_inert(out: str) -> None:
    low = out.lower()
    assert "<script" not in low
    assert "<iframe" not in low
    assert "<style" not in low
    assert "<svg" not in low
    assert "javascript:" not in low
    assert "vbscript:" not in low
    assert not any(name.startswith("on") for name in _attr_names(out))
    assert "style=" not in low


def _attr_names(out: str) -> set[str]:
    import re

    return {m.group(1).lower() for m in re.finditer(r"\s([a-zA-Z-]+)=", out)}


def _attr_values(out: str) -> list[str]:
    import re

    return [m.group(1).lower() for m in re.finditer(r'\s(?:href|src)="([^"]*)"', out)]


def mjml_accepts(fragment: str) -> str:
    src = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>"
        f"{fragment}</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    return mjml.mjml2html(src)


def test_hostile_markup_is_inert() -> None:
    out = clean_html(HOSTILE, BASE)
    assert_inert(out)
    assert not any(name.startswith("on") for name in _attr_names(out))
    assert "data:" not in out
    assert "Hi" in out
    mjml_accepts(out)


def test_links_are_absolute_with_noopener() -> None:
    out = clean_html(
        '<a href="../other/?a=1&b=2#x">o</a> <a href="mailto:ed@harbourlight.example">m</a>', BASE
    )
    assert (
        '<a href="https://harbourlight.example/2026/05/other/?a=1&amp;b=2#x" rel="noopener">o</a>'
        in out
    )
    assert 'href="mailto:ed@harbourlight.example"' in out


def test_images_absolute_and_self_closed() -> None:
    out = clean_html(
        '<figure><img src="/img/a.jpg" alt="The pier"><figcaption>Pier</figcaption></figure><br><hr>',
        BASE,
    )
    assert '<img src="https://harbourlight.example/img/a.jpg" alt="The pier"/>' in out
    assert "<br/>" in out and "<hr/>" in out
    mjml_accepts(out)


def test_text_is_escaped_for_mjml() -> None:
    out = clean_html("a < b &amp; c &nbsp; &copy; <p>unclosed <b>bold", None)
    assert "a &lt; b &amp; c" in out
    assert "&nbsp;" not in out and "©" in out
    assert out.endswith("</b></p>")
    mjml_accepts(out)


def test_headings_move_under_the_template() -> None:
    assert clean_html("<h1>A</h1><h6>B</h6>") == "<h2>A</h2><h4>B</h4>"


def test_rtl_direction_kept() -> None:
    out = clean_html('<p dir="rtl" lang="ar">مرحبا</p><p dir="evil">x</p>')
    assert out == '<p dir="rtl" lang="ar">مرحبا</p><p>x</p>'


def test_html_to_text() -> None:
    text = html_to_text(
        "<p>Hello &amp; <b>world</b></p><p>Two<br>lines</p><ul><li>one</li><li>two</li></ul>"
        "<script>var x = 1;</script><pre>code\n  indented</pre>"
    )
    assert text == "Hello & world\n\nTwo\nlines\n\n- one\n- two\n\ncode\n  indented"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Council &amp;amp; harbour", "Council & harbour"),
        ("It&amp;#8217;s here", "It’s here"),
        ("<b>Bold</b> move", "Bold move"),
        # Escaped markup is text once decoded: kept (and escaped again wherever it is
        # shown), never stripped: a title about <script> tags keeps them.
        ("&lt;script&gt;alert(1)&lt;/script&gt;Title", "<script>alert(1)</script>Title"),
        ("Why &lt;script&gt; tags are dangerous", "Why <script> tags are dangerous"),
        ("Line one\r\nBcc: victim@example.org", "Line one Bcc: victim@example.org"),
        ("  spaced\t\x00out\x1b ", "spaced out"),
        ("Family 👨‍👩‍👧 day", "Family 👨‍👩‍👧 day"),
        ("<b<script>x</script>&lt;script&gt;]]>", "<b x <script>]]>"),
        ("<\x1f?>", ""),  # a control inside a tag must not survive as the tag's glue
        ("&lt;&#x1f;b&gt;Tag", "<b>Tag"),
        ("", ""),
    ],
)
def test_one_line(raw: str, expected: str) -> None:
    assert one_line(raw) == expected


def test_one_line_of_text_takes_nothing_for_a_tag() -> None:
    assert (
        one_line("Why <script> tags are dangerous", markup=False)
        == "Why <script> tags are dangerous"
    )
    assert one_line("Parsing <with>\r\nnew tools", markup=False) == "Parsing <with> new tools"


def test_excerpt_prefers_sentence_then_word() -> None:
    text = "The council met on Tuesday. It voted to fund the harbour wall. Residents were pleased overall."
    assert excerpt(text, 70) == "The council met on Tuesday. It voted to fund the harbour wall."
    cut = excerpt("word " * 40, 50)
    assert cut.endswith("word…") and len(cut) <= 50
    assert excerpt("short", 50) == "short"
    cjk = excerpt("日本語の文章" * 20, 30)
    assert len(cjk) <= 30 and cjk.endswith("…")


def test_excerpt_never_splits_a_grapheme() -> None:
    text = "x" * 28 + "👍🏽" + "y" * 10
    out = excerpt(text, 30)
    assert "\U0001f3fd" not in out or "👍" in out


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/a", "https://h.example/b/", "https://h.example/a"),
        ("//cdn.example/x.png", "https://h.example/", "https://cdn.example/x.png"),
        ("javascript:alert(1)", "https://h.example/", None),
        ("mailto:x@h.example", None, None),
        ("ftp://h.example/x", None, None),
        ("relative", None, None),
        (" https://h.example/ok ", None, "https://h.example/ok"),
        (None, None, None),
    ],
)
def test_absolute_http_url(url: str | None, base: str | None, expected: str | None) -> None:
    assert absolute_http_url(url, base) == expected


_markup = st.lists(
    st.sampled_from(
        [
            "<script>",
            "</script>",
            "<img src=x onerror=alert(1)>",
            '<a href="javascript:x">',
            "</a>",
            "<p>",
            "</p>",
            "<",
            ">",
            "&",
            "&amp;lt;script&amp;gt;",
            "\r\n",
            '"',
            "'",
            "<svg/onload=x>",
            "<iframe>",
            "javascript:",
            "<b",
            "=",
            "&#x3C;script&#x3E;",
            "<a href='//evil.example' onmouseover='x'>",
            "<!--",
            "-->",
            "<![CDATA[",
            "]]>",
            "<style>",
            "<math><mi xlink:href=javascript:x>",
            "\x00",
            "\u202e",
        ]
    )
    | st.text(max_size=8),
    max_size=25,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_markup)
def test_property_clean_html_never_active(raw: str) -> None:
    out = clean_html(raw, BASE)
    low = out.lower()
    assert "<script" not in low and "<iframe" not in low and "<svg" not in low
    for value in _attr_values(out):
        assert value.startswith(("https://", "http://", "mailto:")) or ":" not in value
    assert not any(name.startswith("on") for name in _attr_names(out))
    mjml_accepts(out)


@settings(max_examples=300, deadline=None)
@given(_markup)
def test_property_one_line_is_plain(raw: str) -> None:
    out = one_line(raw)
    assert "\r" not in out and "\n" not in out and "\x00" not in out
    # Text, not markup: escaped, it holds no tag at all.
    from markupsafe import escape

    assert "<" not in str(escape(out))
    html_to_text(raw)
    excerpt(raw, 40)
