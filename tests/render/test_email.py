"""render_edition: the digest's HTML, text, subject, size budget, locales and templates."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape as _escape

from distrib.config import ConfigError
from distrib.errors import TemplateError
from distrib.model import Image, Post
from distrib.render.email import render_edition, size_as_sent

from .cases import FIXED_NOW, WEB_URL, make_posts


def html_escape(text: str) -> str:
    return str(_escape(text))


def render(settings, posts, *, web_url=WEB_URL, name="digest", max_full=None, **overrides):
    newsletter = dict(settings.data["digest"]) | overrides
    return render_edition(
        settings,
        posts,
        newsletter=newsletter,
        name=name,
        now=FIXED_NOW,
        web_url=web_url,
        max_full=max_full,
    )


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))


def images_of(html: str) -> list[dict[str, str | None]]:
    p = _Images()
    p.feed(html)
    return p.images


def test_digest_has_every_part(make_settings):
    settings = make_settings(
        '[[theme.social]]\nname = "Mastodon"\nurl = "https://mastodon.example/@harbour"\n'
    )
    posts = make_posts(6)
    r = render(settings, posts)
    assert r.template == "digest"
    assert r.full_keys == tuple(p.key for p in posts) and r.overflow_keys == ()
    html = r.html
    assert html.startswith("<!doctype html>") and "<mj-" not in html
    assert '<html lang="en" dir="ltr"' in html
    for p in posts:
        assert html_escape(p.title) in html
        assert p.title in r.text
    assert "https://news.harbour.example/posts/1/?ref=feed&amp;amp=1" in html  # & escaped in href
    assert "https://news.harbour.example/posts/1/?ref=feed&amp=1" in r.text  # and not in text
    # The footer: unsubscribe link, recipient line, postal address, social link.
    assert f'href="{r.markers.url}"' in html
    assert r.markers.email in html and r.markers.email in r.text
    assert f"Unsubscribe: {r.markers.url}" in r.text
    assert "12 Quay Street, Portsmouth PO1 2AB, United Kingdom" in html
    assert "12 Quay Street, Portsmouth PO1 2AB, United Kingdom" in r.text
    assert 'href="https://mastodon.example/@harbour"' in html
    assert f'href="{WEB_URL}"' in html and WEB_URL in r.text
    # Each post's author, localised date and reading time; tag chips.
    # (names and dates isolated with <bdi>, so a name in another script keeps its order)
    assert "<bdi>Maya Okafor</bdi> · <bdi>Nov 28, 2026</bdi> · <bdi>2 min read</bdi>" in html
    assert "Maya Okafor · Nov 28, 2026 · 2 min read" in r.text
    assert 'class="d-chip"' in html
    assert "#harbour #council" in r.text
    # Every image has a non-empty alt (the post's, else its title).
    imgs = images_of(html)
    assert len(imgs) >= 4 and all((img.get("alt") or "").strip() for img in imgs)
    assert (
        'alt="Night ferry returns to the island timetable"' in html
    )  # post 2 has no alt of its own
    # The text part is text, not stripped HTML.
    assert "<" not in r.text and "&amp;" not in r.text
    assert (
        r.subject
        == "The Harbour Ledger: Harbour wall extension approved after three-year dispute and 5 more"
    )
    assert r.preheader.startswith(
        "Harbour wall extension approved after three-year dispute · Night ferry"
    )


def test_no_view_in_browser_link_without_web_url(make_settings):
    r = render(make_settings(), make_posts(3), web_url=None)
    assert "View in browser" not in r.html and "View in browser" not in r.text


def test_hostile_title_is_inert_and_subject_single_line(make_settings):
    evil = Post(
        key="k1",
        url="https://news.harbour.example/x",
        title="Breaking\r\nBcc: victim@example.com <script>alert(1)</script> & more",
        source="blog",
        summary="A <summary> with <img src=x onerror=alert(1)> inside & an ampersand",
        image=Image("javascript:alert(1)", alt='" onmouseover="alert(1)'),
    )
    r = render(make_settings(), [evil, *make_posts(2)])
    assert "\r" not in r.subject and "\n" not in r.subject
    assert "\n" not in r.preheader
    assert "<script" not in r.html and "javascript:" not in r.html
    assert "onerror=alert" not in r.html.replace("onerror=alert(1)&gt;", "")
    assert "&lt;summary&gt;" in r.html  # summary is plain text: shown, escaped
    assert 'onmouseover="alert' not in r.html


def test_sixty_posts_stay_under_budget_and_link_the_overflow(make_settings):
    settings = make_settings()
    posts = make_posts(60)
    r = render(settings, posts)
    budget = settings.data["digest"]["size_budget_kb"] * 1024
    assert size_as_sent(r.html, "https://news.harbour.example/", r.markers) <= budget
    assert r.overflow_keys, "60 posts should not all fit in full"
    assert r.full_keys + r.overflow_keys == tuple(p.key for p in posts)
    assert len(r.full_keys) >= 20
    # Every overflow post is still linked (title and URL), compactly.
    for p in posts[len(r.full_keys) :]:
        assert html_escape(p.title) in r.html and p.title in r.text
    assert "More in this edition" in r.html
    # One more full post would not have fitted: the split is as large as it can be.
    fewer = render(settings, posts, size_budget_kb=40)
    assert len(fewer.full_keys) < len(r.full_keys)
    assert size_as_sent(fewer.html, "https://news.harbour.example/", fewer.markers) <= 40 * 1024


def test_one_post_uses_the_single_template(make_settings):
    [post] = make_posts(1)
    r = render(make_settings(), [post])
    assert r.template == "single"
    assert "Read more" in r.html and f"Read more: {post.url}" in r.text
    assert r.subject == f"The Harbour Ledger: {post.title}"
    assert "<mj-" not in r.html


def test_by_category_layout_groups_posts(make_settings):
    r = render(
        make_settings('[theme]\nlayout = "by-category"\nlead_story = false\n'), make_posts(6)
    )
    for heading in ("Politics", "Transport", "Business", "Environment", "Culture", "More stories"):
        assert f">{heading}</h2>" in r.html, heading
        assert heading.upper() in r.text
    # Uncategorised posts come last.
    assert r.html.index(">More stories</h2>") > r.html.index(">Culture</h2>")


def test_theme_colours_and_dark_mode(make_settings):
    r = render(
        make_settings('[theme]\nbrand_color = "#0a7"\naccent_color = "#AA3300"\n'), make_posts(3)
    )
    assert "#00aa77" not in r.html  # colours are kept as given (lower-cased), not expanded
    assert "#0a7" in r.html and "#aa3300" in r.html
    assert "prefers-color-scheme: dark" in r.html
    r2 = render(make_settings("[theme]\ndark_mode = false\n"), make_posts(3))
    assert "prefers-color-scheme" not in r2.html


def test_bad_theme_values_are_config_errors(tmp_path, make_settings):
    with pytest.raises(ConfigError) as e:
        make_settings('[theme]\nbrand_color = "bleu"\nlayout = "grid"\nfont_family = "x;}"\n')
    text = str(e.value)
    assert "theme.brand_color" in text and "theme.layout" in text and "theme.font_family" in text


def test_arabic_edition_is_right_to_left(make_settings):
    settings = make_settings(site='language = "ar"')
    r = render(settings, make_posts(4, lang="ar"))
    assert '<html lang="ar" dir="rtl"' in r.html
    assert "direction:ltr" not in r.html
    assert "اقرأ المزيد" in r.html and "إلغاء الاشتراك" in r.html
    assert "نوفمبر" in r.html  # the date in Arabic (Babel)
    assert "إلغاء الاشتراك" in r.text


def test_japanese_edition_renders(make_settings):
    import dataclasses

    posts = make_posts(4, lang="ja")
    # A long full text (the fixture's is under a minute, which shows no reading time).
    posts[0] = dataclasses.replace(posts[0], content=posts[0].content * 3)
    r = render(make_settings(site='language = "ja"\ntimezone = "Asia/Tokyo"'), posts)
    assert '<html lang="ja" dir="ltr"' in r.html
    assert "港の防波堤延長を承認" in r.html and "<bdi>3分で読めます</bdi>" in r.html
    assert "2026年11月28日" in r.html  # Babel's long date in Japanese
    assert "配信停止" in r.text


def test_ukrainian_dates_and_wording(make_settings):
    r = render(make_settings(site='language = "uk"\ntimezone = "Europe/Kyiv"'), make_posts(3))
    assert "листопада 2026" in r.html
    assert "хв читання" in r.html and "Відписатися" in r.html


def test_direction_can_be_forced(make_settings):
    r = render(make_settings(site='language = "en"\ndirection = "rtl"'), make_posts(2))
    assert 'dir="rtl"' in r.html


# --- overrides and errors -------------------------------------------------------------


def _override(tmp_path: Path, name: str, body: str) -> str:
    d = tmp_path / "my-templates" / "email"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(body, encoding="utf-8")
    return '[templates]\ndir = "my-templates"\n'


def test_override_extends_the_default(tmp_path, make_settings):
    extra = _override(
        tmp_path,
        "digest.mjml.j2",
        '{% extends "!default/email/digest.mjml.j2" %}\n'
        "{% block lead %}<mj-section><mj-column><mj-text>Editor's pick: {{ lead.title }}</mj-text>"
        "</mj-column></mj-section>{% endblock %}\n",
    )
    r = render(make_settings(extra), make_posts(3))
    assert "Editor's pick: Harbour wall extension" in r.html.replace("&#39;", "'")
    assert "Night ferry returns" in r.html  # the rest of the default is still there


def test_broken_override_names_file_and_line(tmp_path, make_settings):
    extra = _override(
        tmp_path, "digest.mjml.j2", "<mjml>\n<mj-body>\n{% if posts %}\n</mj-body>\n</mjml>\n"
    )
    with pytest.raises(TemplateError) as e:
        render(make_settings(extra), make_posts(3))
    msg = str(e.value)
    assert "my-templates/email/digest.mjml.j2:" in msg and "\n" not in msg
    assert re.search(r"digest\.mjml\.j2:\d+: ", msg)
    assert e.value.exit_code == 2


def test_undefined_variable_names_file_and_line(tmp_path, make_settings):
    extra = _override(
        tmp_path,
        "digest.mjml.j2",
        '{% extends "!default/email/digest.mjml.j2" %}\n{% block lead %}\n{{ lead.no_such_field }}\n{% endblock %}\n',
    )
    with pytest.raises(TemplateError) as e:
        render(make_settings(extra), make_posts(3))
    assert re.search(r"my-templates/email/digest\.mjml\.j2:3: .*no_such_field", str(e.value))


def test_missing_template_lists_the_paths_searched(tmp_path, make_settings):
    extra = _override(tmp_path, "other.txt.j2", "x")
    with pytest.raises(TemplateError) as e:
        render(make_settings(extra), make_posts(2), template="weekly")
    msg = str(e.value)
    assert "email/weekly.mjml.j2" in msg
    assert str(tmp_path / "my-templates" / "email" / "weekly.mjml.j2") in msg
    assert "templates/email/weekly.mjml.j2" in msg


def test_unknown_mjml_tag_is_reported_with_the_template(tmp_path, make_settings):
    extra = _override(
        tmp_path,
        "digest.mjml.j2",
        '{% extends "!default/email/digest.mjml.j2" %}\n'
        "{% block lead %}<mj-section><mj-colum><mj-text>x</mj-text></mj-colum></mj-section>{% endblock %}\n",
    )
    with pytest.raises(TemplateError) as e:
        render(make_settings(extra), make_posts(2))
    assert "email/digest.mjml.j2" in str(e.value)


def test_invalid_mjml_is_reported_with_the_template(tmp_path, make_settings):
    extra = _override(tmp_path, "digest.mjml.j2", "<mjml><mj-body><mj-section></mj-body></mjml>\n")
    with pytest.raises(TemplateError) as e:
        render(make_settings(extra), make_posts(2))
    assert "email/digest.mjml.j2" in str(e.value) and "MJML" in str(e.value)


def test_bad_subject_template_names_the_config_key(make_settings):
    with pytest.raises(TemplateError) as e:
        render(make_settings(), make_posts(2), subject="{{ posts[0].nope }}")
    assert str(e.value).startswith("digest.subject: ")
    with pytest.raises(TemplateError) as e:
        render(make_settings(), make_posts(2), name="weekly", subject="{% if %}")
    assert "newsletters (weekly).subject" in str(e.value)


def test_check_templates_reports_problems(tmp_path, make_settings):
    from distrib.render.email import check_templates

    settings = make_settings()
    assert check_templates(settings, [("digest", settings.data["digest"])], FIXED_NOW) == []
    extra = _override(tmp_path, "single.txt.j2", "{{ site.name }}\n{% for %}\n")
    _override(tmp_path, "digest.txt.j2", "{{ site.name }} has no footer\n")
    settings = make_settings(extra)
    problems = check_templates(settings, [("digest", settings.data["digest"])], FIXED_NOW)
    assert len(problems) == 2
    assert "no unsubscribe link" in problems[0] and "email/digest" in problems[0]
    assert re.search(r"single\.txt\.j2:2: ", problems[1])


def test_web_font_and_date_pattern_from_theme(make_settings):
    plain = render(make_settings(), make_posts(2))
    assert "fonts.googleapis.com" not in plain.html  # fonts={} by default: no extra request
    r = render(
        make_settings(
            '[theme]\nweb_font_name = "Merriweather"\n'
            'web_font_url = "https://fonts.googleapis.com/css?family=Merriweather"\n'
            'font_family = "Merriweather, Georgia, serif"\ndate_format = "d MMM y"\n'
        ),
        make_posts(2),
    )
    assert "https://fonts.googleapis.com/css?family=Merriweather" in r.html
    assert "font-family:Merriweather, Georgia, serif" in r.html
    assert "<bdi>Maya Okafor</bdi> · <bdi>28 Nov 2026</bdi> · <bdi>2 min read</bdi>" in r.html


def test_reading_time_counts_words_and_cjk_characters():
    from distrib.render.theme import reading_minutes

    assert reading_minutes("word " * 200) == 1
    assert reading_minutes("word " * 201) == 2
    assert reading_minutes("") == 1
    assert reading_minutes("港" * 1000) == 2  # 500 CJK characters a minute


def test_subject_template_can_use_the_catalogue(make_settings):
    subject = '{{ site.name }}: {{ posts[0].title }}{% if posts|length > 1 %} {{ t("and_more", n=posts|length - 1) }}{% endif %}'
    r = render(make_settings(site='language = "uk"'), make_posts(3), subject=subject)
    assert r.subject.endswith(" та ще 2")


def test_images_can_be_turned_off(make_settings):
    r = render(make_settings("[theme]\nimages = false\n"), make_posts(4))
    assert "media/" not in r.html
    assert [img["alt"] for img in images_of(r.html)] == ["The Harbour Ledger"]  # the logo only


def test_config_section_names_itself_in_errors(make_settings):
    from distrib.config import Section

    settings = make_settings()
    section = Section(
        dict(settings.data["digest"]) | {"preheader": "{{ nope }}"}, "newsletters[1] (weekly)"
    )
    with pytest.raises(TemplateError, match=r"^newsletters\[1\] \(weekly\)\.preheader: .*nope"):
        render_edition(settings, make_posts(2), newsletter=section, name="weekly", now=FIXED_NOW)


@pytest.mark.parametrize("n", [20, 100, 500, 2000])
def test_the_size_budget_holds_at_any_number_of_posts(make_settings, n):
    """A 500-post edition came out at 154 KB against the 90 KB budget (Gmail clips it,
    hiding the unsubscribe footer): even the title links must be bounded."""
    settings = make_settings('[theme]\narchive_url = "https://news.harbour.example/letters/"\n')
    posts = make_posts(n)
    r = render(settings, posts, max_full=10)
    assert size_as_sent(r.html, "https://news.harbour.example/", r.markers) <= 90 * 1024
    assert f'href="{r.markers.url}"' in r.html  # the footer is there, unclipped
    assert r.full_keys + r.overflow_keys == tuple(p.key for p in posts)  # every post accounted for
    assert len(r.full_keys) == 10
    listed = len(r.overflow_keys) - r.more
    for p in posts[10 : 10 + listed]:
        assert html_escape(p.title) in r.html and p.title in r.text
    if n >= 500:
        assert r.more > 0 and listed > 50
        line = f"{r.more:,} more stories on the site"
        assert line in r.html and line in r.text
        assert 'href="https://news.harbour.example/letters/"' in r.html
        assert html_escape(posts[-1].title) not in r.html
    else:
        assert r.more == 0 and "more stories on the site" not in r.html


def test_an_edition_that_cannot_fit_is_refused_not_clipped(make_settings):
    with pytest.raises(TemplateError, match="cannot fit size_budget_kb = 5.*not sent clipped"):
        render(make_settings(), make_posts(30), size_budget_kb=5, max_full=10)


def test_reading_time_only_when_the_full_text_is_known(make_settings):
    """ "1 min read" was on every summary-only post."""
    import dataclasses

    full, summary_only, same = make_posts(3)
    summary_only = dataclasses.replace(
        summary_only, summary="A short summary of the story.", content=""
    )
    same = dataclasses.replace(
        same,
        summary="The summary is all the feed gave.",
        content="<p>The summary is all the feed gave.</p>",
    )
    r = render(make_settings(), [full, summary_only, same])
    assert r.html.count("min read") == 1 and "2 min read" in r.html
    assert r.text.count("min read") == 1


def test_the_category_label_is_not_repeated_as_a_chip(make_settings):
    import dataclasses

    [post] = make_posts(1)
    post = dataclasses.replace(post, categories=("Business",), tags=("business", "bakeries"))
    r = render(make_settings(), [post])
    assert r.html.count(">Business<") == 1  # the label, not also a chip
    assert 'class="d-chip"' in r.html and ">bakeries</span>" in r.html
