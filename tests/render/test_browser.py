"""The digest in headless Chromium at phone (375 px) and desktop (1280 px) widths.

No horizontal scrolling on a phone, every image with an alt text, body text at 14 px
or more.  Needs /usr/bin/chromium (apt-get install chromium); skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from distrib.render.email import render_edition

from . import browser
from .cases import FIXED_NOW, WEB_URL, make_posts

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not browser.available(), reason=browser.SKIP_REASON),
]


def local_images(html: str, tmp_path: Path) -> str:
    """Point the posts' image URLs at real local PNGs so the layout has real images."""
    from PIL import Image as PILImage

    for i in range(1, 61):
        url = f"https://news.harbour.example/media/{i}.jpg"
        if url in html:
            f = tmp_path / f"{i}.png"
            PILImage.new("RGB", (640, 360), (40 + i * 3 % 200, 90, 140)).save(f)
            html = html.replace(url, f.as_uri())
    logo = tmp_path / "logo.png"
    PILImage.new("RGB", (480, 120), (255, 255, 255)).save(logo)
    return html.replace("https://news.harbour.example/static/logo.png", logo.as_uri())


def rendered(settings, posts) -> str:
    r = render_edition(
        settings,
        posts,
        newsletter=settings.data["digest"],
        name="digest",
        now=FIXED_NOW,
        web_url=WEB_URL,
    )
    return r.html


CASES = {
    "en": ("", 8, "en"),
    "en-by-category": ('[theme]\nlayout = "by-category"\n', 8, "en"),
    "ar": ("", 6, "ar"),
    "ja": ("", 6, "ja"),
    "single": ("", 1, "en"),
}


@pytest.fixture(params=sorted(CASES))
def case(request, make_settings, tmp_path):
    extra, n, lang = CASES[request.param]
    site = f'language = "{lang}"' if lang != "en" else ""
    html = rendered(make_settings(extra, site=site), make_posts(n, lang=lang))
    return request.param, lang, local_images(html, tmp_path)


def test_layout_readable_and_accessible(case, tmp_path):
    name, lang, html = case
    for width, m in browser.measure_widths(html, (375, 1280), workdir=tmp_path).items():
        check(name, lang, width, m)


def check(name: str, lang: str, width: int, m: dict) -> None:
    assert m["innerWidth"] == width
    assert m["scrollWidth"] <= m["innerWidth"], f"{name} at {width}px scrolls sideways: {m['wide']}"
    assert m["images"] >= 1
    assert m["noAlt"] == [], f"{name}: images without alt: {m['noAlt']}"
    assert m["minBody"] >= 14, f"{name} at {width}px: body text under 14px: {m['small']}"
    assert m["minFine"] >= 12, f"{name} at {width}px: fine print under 12px"
    assert m["lang"] == lang
    assert m["dir"] == ("rtl" if lang == "ar" else "ltr")


def test_dark_mode_changes_the_background(make_settings, tmp_path):
    html = rendered(make_settings(), make_posts(3))
    light = browser.measure(html, 375, workdir=tmp_path)
    dark = browser.measure(html, 375, workdir=tmp_path, dark=True)
    assert light["bodyBackground"] == "rgb(242, 244, 247)"
    assert dark["bodyBackground"] == "rgb(15, 20, 25)"


def test_sixty_post_digest_fits_a_phone(make_settings, tmp_path):
    html = local_images(rendered(make_settings(), make_posts(60)), tmp_path)
    m = browser.measure(html, 375, workdir=tmp_path)
    assert m["scrollWidth"] <= m["innerWidth"], m["wide"]
    assert m["noAlt"] == [] and m["minBody"] >= 14


def test_the_instrument_sees_what_it_should_fail_on(make_settings, tmp_path):
    """The measurement catches a too-wide block, small text and a missing alt (and is
    taken at 375 px, not at Chromium's 500 px minimum window width)."""
    html = rendered(make_settings(), make_posts(2)).replace(
        "</h1>",
        "</h1><div style='width:900px'>wide</div><p style='font-size:11px'>tiny</p><img src='x.png'>",
        1,
    )
    m = browser.measure(html, 375, workdir=tmp_path)
    assert m["innerWidth"] == 375
    assert m["scrollWidth"] > m["innerWidth"]
    assert m["minBody"] == 11 and m["small"] == ["tiny (11px)"]
    assert len(m["noAlt"]) == 1


def test_long_unbroken_words_do_not_widen_a_phone(make_settings, tmp_path):
    from distrib.model import Post

    odd = [
        Post(key="a", url="https://x.example/a", title="", source="s"),
        Post(
            key="b",
            url="https://x.example/b",
            title="Pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
            source="s",
            summary="See https://example.org/" + "very-long-path-segment" * 10 + " for details",
            tags=("averyveryverylongtagwithoutanyspacesatallinside" * 2,),
            categories=("Categorywithaverylongnamethatdoesnotbreak" * 2,),
        ),
        *make_posts(2),
    ]
    html = local_images(rendered(make_settings('[theme]\nlayout = "by-category"\n'), odd), tmp_path)
    m = browser.measure(html, 375, workdir=tmp_path)
    assert m["scrollWidth"] <= m["innerWidth"], m["wide"]


def test_note_and_sponsor_fit_a_phone_and_keep_the_rules(make_settings, tmp_path):
    sponsor = (
        '[digest.sponsor]\ntitle = "Port Avery Regatta, the whole weekend on the water"\n'
        'text = "Tickets at https://regatta.example/'
        + "a-very-long-path-segment"
        * 6
        + ' and **more**."\n'
        'url = "https://regatta.example/t"\nlink_text = "Get tickets"\nimage = "https://news.harbour.example/media/1.jpg"\n'
    )
    settings = make_settings(sponsor)
    r = render_edition(
        settings,
        make_posts(4),
        newsletter=settings.data["digest"],
        name="digest",
        now=FIXED_NOW,
        web_url=WEB_URL,
        note="**From the editor.** A note with a [link](https://example.org/" + "x" * 80 + ").",
    )
    assert "Port Avery Regatta" in r.html and "From the editor." in r.html
    html = local_images(r.html, tmp_path)
    for width, m in browser.measure_widths(html, (375, 1280), workdir=tmp_path).items():
        check("note+sponsor", "en", width, m)


# --- mixed scripts and the phone layout ---------------------------------------------------

EN_TITLE, EN_SUMMARY, EN_AUTHOR = (
    "Police close the bridge",
    "Police have closed the bridge.",
    "Maria Kovalenko",
)
AR_TITLE, AR_SUMMARY, AR_AUTHOR = (
    "الشرطة تغلق الجسر",
    "أغلقت الشرطة الجسر بعد العاصفة.",
    "مريم حداد",
)

# The computed direction of the innermost title, meta line and summary of each post.
_DIRECTIONS = """(function () {
  var want = %s, out = {};
  document.querySelectorAll('p, h2, h3').forEach(function (el) {
    var text = el.textContent.trim();
    Object.keys(want).forEach(function (name) {
      if (text.indexOf(want[name]) !== -1) out[name] = getComputedStyle(el).direction;
    });
  });
  return out;
})()"""


def _post(key: str, title: str, summary: str, author: str):
    import dataclasses

    [base] = make_posts(1)
    return dataclasses.replace(
        base,
        key=key,
        url=f"https://news.harbour.example/{key}/",
        title=title,
        summary=summary,
        author=author,
        image=None,
    )


@pytest.mark.parametrize("language", ["ar", "en"])
def test_each_post_has_its_own_direction_in_a_mixed_script_edition(
    make_settings, tmp_path, language
):
    """An English post in an Arabic edition read ".Police have closed the bridge" and
    "01 · 2026/12/Maria Kovalenko"; an Arabic post in an English edition the reverse."""
    import json

    posts = [
        _post("en", EN_TITLE, EN_SUMMARY, EN_AUTHOR),
        _post("ar", AR_TITLE, AR_SUMMARY, AR_AUTHOR),
    ]
    settings = make_settings(site=f'language = "{language}"' if language != "en" else "")
    for order in (posts, posts[::-1]):  # each as the lead story and as a list item
        html = rendered(settings, order)
        want = {
            "en-title": EN_TITLE, "en-summary": EN_SUMMARY, "en-meta": EN_AUTHOR,
            "ar-title": AR_TITLE, "ar-summary": AR_SUMMARY, "ar-meta": AR_AUTHOR,
        }  # fmt: skip
        dirs = browser.evaluate(html, _DIRECTIONS % json.dumps(want), width=600, workdir=tmp_path)
        assert dirs == {
            "en-title": "ltr", "en-summary": "ltr", "en-meta": "ltr",
            "ar-title": "rtl", "ar-summary": "rtl", "ar-meta": "rtl",
        }, (language, dirs)  # fmt: skip
        # names and dates isolated, so they keep their own order inside the line
        assert f"<bdi>{EN_AUTHOR}</bdi>" in html and f"<bdi>{AR_AUTHOR}</bdi>" in html
        assert f'<html lang="{language}" dir="{"rtl" if language == "ar" else "ltr"}"' in html


def test_the_thumbnail_stacks_above_the_text_on_a_phone(make_settings, tmp_path):
    """At 375 px the thumbnail stayed beside the title, which wrapped to 3-4 lines in
    200 px: below 480 px the image goes above the text, full width."""
    html = local_images(rendered(make_settings(), make_posts(4)), tmp_path)
    probe = """(function () {
      var img = document.querySelector('img.d-thumb');
      var h3 = img.closest('div').querySelector('h3');
      var i = img.getBoundingClientRect(), h = h3.getBoundingClientRect();
      return {imgBottom: i.bottom, imgWidth: i.width, titleTop: h.top, titleWidth: h.width};
    })()"""
    phone = browser.evaluate(html, probe, width=375, workdir=tmp_path)
    assert phone["imgBottom"] <= phone["titleTop"] + 0.5, phone  # above, not beside
    assert phone["titleWidth"] > 300, phone  # the title has the whole width
    assert phone["imgWidth"] > 300, phone
    desktop = browser.evaluate(html, probe, width=640, workdir=tmp_path)
    assert desktop["imgBottom"] > desktop["titleTop"], desktop  # beside it on a wide screen
