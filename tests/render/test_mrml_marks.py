"""MRML escapes combining marks in attributes as "\\u{...}"; we must not let it."""

from __future__ import annotations

import pytest

from distrib.render.email import compile_mjml


@pytest.mark.parametrize(
    "text", ["مساءً", "café", "กิน", "👩‍👩‍👧", "soft\u00adhyphen", "\u200fRTL mark"]
)
def test_marks_in_attributes_and_title_survive(text: str):
    source = (
        f"<mjml><mj-head><mj-title>{text}</mj-title></mj-head><mj-body><mj-section><mj-column>"
        f'<mj-image src="https://x.example/a.png" alt="{text}"/><mj-text><a href="https://x.example/" title="{text}">{text}</a></mj-text>'
        "</mj-column></mj-section></mj-body></mjml>"
    )
    html = compile_mjml(source, "test", {})
    assert "\\u{" not in html
    from html import unescape

    assert f'alt="{text}"' in unescape(html)
