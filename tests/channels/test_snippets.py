"""The snippet composer: variants, hashtags, trimming, UTM, facets; a property test."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distrib.channels.linkedin import little_text
from distrib.channels.webhook import slack_escape, utf16_length
from distrib.errors import DistribError
from distrib.model import Facet
from distrib.render.length import bluesky_length, iter_urls, mastodon_length, x_length
from distrib.render.snippets import (
    add_utm,
    clean_hashtag,
    compose,
    facets_for,
    hashtags_for,
    share_env,
    template_variants,
)
from tests.channels.conftest import make_post

ENV = share_env(None)
VARIANTS = template_variants(ENV, "default")


def bluesky_counter(text: str) -> int:
    graphemes, size = bluesky_length(text)
    return max(graphemes, -(-size // 10))


def _compose(post, counter=x_length, limit=280, hashtags=3, utm=None):
    return compose(
        post,
        channel="test",
        template_names=VARIANTS,
        env=ENV,
        counter=counter,
        limit=limit,
        hashtags=hashtags,
        utm=utm,
        link_url=post.url,
    )


def test_variants_are_found_rich_to_short():
    assert VARIANTS == ["share/default.j2", "share/default.short.j2", "share/default.title.j2"]


def test_rich_variant_with_hashtags_when_it_fits():
    post = make_post(
        1, title="Ferries & fares", summary="Short.", tags=("Local politics", "ferries")
    )
    s = _compose(post)
    assert s.text == (
        "Ferries & fares\n\nShort.\n\n#LocalPolitics #ferries #News\n\nhttps://news.example/posts/1"
    )  # plain text: "&" is not escaped
    assert s.hashtags == ("#LocalPolitics", "#ferries", "#News")
    assert s.length == x_length(s.text)


def test_hashtags_go_before_the_summary_is_cut():
    summary = "word " * 40
    post = make_post(1, title="T", summary=summary.strip(), tags=("alpha", "beta"))
    full = _compose(post, limit=1000)
    assert "#alpha" in full.text
    limit = full.length - 1
    s = _compose(post, limit=limit)
    assert "#alpha" in s.text and "#beta" in s.text and "#News" not in s.text
    s = _compose(post, limit=full.length - len(" #alpha #beta #News") - 1)
    assert s.hashtags == () and "…" not in s.text or "#" not in s.text
    s = _compose(post, limit=120)
    assert "#" not in s.text and s.text.count("…") == 1 and s.length <= 120
    assert "word…" in s.text  # cut at a word boundary


def test_summary_trim_never_cuts_a_url_hashtag_or_mention():
    summary = (
        "Council notes at https://news.example/documents/council-2026-11-18-minutes.pdf "
        "and #FerryLine2026 discussion with @harbourmaster@port.example about the pier "
        + "and more words "
        * 10
    )
    post = make_post(1, title="Minutes", summary=summary, tags=())
    for limit in range(60, 200, 3):
        try:
            s = _compose(post, limit=limit, counter=mastodon_length)
        except DistribError:
            continue
        body = s.text
        assert s.length <= limit
        for piece, whole in (
            ("documents/", "https://news.example/documents/council-2026-11-18-minutes.pdf"),
            ("#Ferry", "#FerryLine2026"),
            ("@harbour", "@harbourmaster@port.example"),
        ):
            if piece in body:
                assert whole in body, (limit, body)


def test_cjk_summary_is_cut_between_characters():
    post = make_post(
        1, title="港の新しいフェリー", summary="市議会は火曜日の夜に会合を開き" * 10, tags=()
    )
    s = _compose(post, limit=120)
    assert s.length <= 120 and "…" in s.text


# A link on a real top-level domain counts 23 on X (.example is reserved, not a TLD).
LINK = "https://news.example.org/posts/1"


def test_falls_back_to_title_and_link():
    post = make_post(1, title="A" * 200, summary="Some summary text here.", tags=("x",), url=LINK)
    s = _compose(post, limit=229)  # the short variant with its hashtags fits
    assert s.text == "A" * 200 + "\n\n#x\n\n" + LINK
    s = _compose(post, limit=228)
    assert s.text == "A" * 200 + "\n\n" + LINK


def test_cannot_fit_names_post_and_channel():
    # A title of one 300-letter word is now cut between graphemes (issue 10); what still
    # cannot fit is a limit with no room for ten of them beside the link.
    post = make_post(1, title="A" * 300, url=LINK)
    with pytest.raises(DistribError) as e:
        _compose(post, limit=30)
    assert str(e.value) == (
        "post https://news.example/posts/1 cannot fit channel test (325 > 30): "
        "shorten the title or use a shorter template"
    )
    assert _compose(post).text.startswith("A" * 200)


def test_a_title_over_the_limit_is_cut_between_words_not_left_unshared():
    words = "The harbour council debates the new lighting scheme while the fishermen argue " * 4
    post = make_post(1, title=words.strip(), summary="Short.", tags=("x",))
    s = _compose(post)
    assert s.length == x_length(s.text) <= 280
    title = s.text.split("\n\n")[0]
    assert title.endswith("…") and words.startswith(title[:-1] + " ")  # whole words only
    assert s.text.endswith("\n\nhttps://news.example/posts/1")


def test_a_cjk_title_over_xs_weighted_limit_is_cut_between_characters():
    title = (
        "東京の天気予報：今週は晴れのち曇り、週末には雨の可能性があります。" * 5
    )  # 165 x 2 > 280
    post = make_post(1, title=title, summary="五。", tags=())
    s = _compose(post)
    assert s.length == x_length(s.text) <= 280
    assert s.text.split("\n\n")[0][:-1] in title and s.text.startswith("東京の天気予報")
    g, size = bluesky_length(_compose(post, counter=bluesky_counter, limit=300).text)
    assert g <= 300


def test_an_emoji_run_glued_into_one_word_is_dropped_whole():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    post = make_post(
        1,
        title="Family day at the harbour " + family + " and " + family * 150,
        summary="S.",
        tags=(),
    )
    s = _compose(post)
    assert s.text.startswith("Family day at the harbour " + family + " and…") and s.length <= 280


def test_utm_parameters():
    assert add_utm("https://news.example/a?x=1#top", "x", "social", "distrib") == (
        "https://news.example/a?x=1&utm_source=x&utm_medium=social&utm_campaign=distrib#top"
    )
    assert add_utm("https://news.example/a?utm_source=mine", "x", "social", "distrib") == (
        "https://news.example/a?utm_source=mine&utm_medium=social&utm_campaign=distrib"
    )
    post = make_post(1)
    s = _compose(post, utm={"source": "mastodon", "medium": "social", "campaign": "distrib"})
    assert s.link.endswith("?utm_source=mastodon&utm_medium=social&utm_campaign=distrib")
    assert s.text.endswith(s.link)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("python", "python"),
        ("machine learning", "MachineLearning"),
        ("C++", "C"),
        ("state-of-the-art", "StateOfTheArt"),
        ("Київ новини", "КиївНовини"),
        ("2024", None),
        ("!!!", None),
        ("東京", "東京"),
    ],
)
def test_clean_hashtag(tag, expected):
    assert clean_hashtag(tag) == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("أخبار محلية", "أخبار_محلية"),
        ("חדשות מקומיות", "חדשות_מקומיות"),
        ("東京 天気", "東京_天気"),
        ("Python ورشة", "Python_ورشة"),
        ("web 2.0", "Web20"),
    ],
)
def test_words_of_a_caseless_script_are_joined_with_an_underscore(tag, expected):
    assert clean_hashtag(tag) == expected
    text = f"Title\n\n#{expected}"
    [facet] = facets_for(text)
    assert (facet.kind, facet.value) == ("tag", expected)  # one tag on Bluesky, not two


def test_hashtags_dedupe_and_skip_those_in_the_text():
    post = make_post(
        1, tags=("Ferries", "ferries", "local politics"), categories=("News", "LOCAL POLITICS")
    )
    assert hashtags_for(post, "Big day for #ferries") == ["#LocalPolitics", "#News"]


def test_facets_have_utf8_byte_offsets():
    text = "Пором 🚢 #Порт\n\nhttps://news.example/p?utm_source=bluesky #2024 example.org"
    facets = facets_for(text)
    encoded = text.encode("utf-8")
    assert facets == (
        Facet(16, 25, "tag", "Порт"),
        Facet(27, 68, "link", "https://news.example/p?utm_source=bluesky"),
        Facet(75, 86, "link", "https://example.org"),
    )
    assert encoded[16:25].decode() == "#Порт"
    assert encoded[27:68].decode() == "https://news.example/p?utm_source=bluesky"
    assert encoded[75:86].decode() == "example.org"


def test_facets_skip_a_fragment_inside_a_url():
    assert [f.kind for f in facets_for("https://news.example/a#section")] == ["link"]


# Issue 10: what @atproto/api's detectFacetsWithoutResolution gives (tests/reference compares
# a whole corpus through node).
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#\ufe0f\u20e3 2\ufe0f\u20e3", ()),  # keycaps are not hashtags
        ("(#inparens)", ()),  # a hashtag must follow a space or the start
        ("ok \U0001f600https://example.com", ()),  # glued to an emoji: not a link
        ("HTTPS://EXAMPLE.COM/a", ()),  # the reference looks for a lower-case scheme
        (
            "see meetup.harbour.engineering/talks",
            (Facet(4, 36, "link", "https://meetup.harbour.engineering/talks"),),
        ),
        ("hi @news.harbourlight.org", (Facet(3, 25, "mention", "news.harbourlight.org"),)),
        ("hi @not.a.tld.invalidtld", ()),
        ("buy $AAPL.", (Facet(4, 9, "cashtag", "$AAPL"),)),
        (
            "x https://example.com/\U0001f600",
            (Facet(2, 26, "link", "https://example.com/\U0001f600"),),
        ),
    ],
)
def test_facets_match_the_bluesky_reference(text, expected):
    assert facets_for(text) == expected


def test_linkedin_keeps_a_cashtag_as_text_not_a_hashtag():
    assert little_text("$AAPL #Tag") == "$AAPL {hashtag|\\#|Tag}"


_words = st.lists(
    st.sampled_from(
        list("abcdefghij klmnop ÄÖü ПРИВЕТ мир 日本語 한국 مرحبا ")
        + [
            "👨\u200d👩\u200d👧",
            "🇺🇦",
            "1\ufe0f\u20e3",
            "e\u0301",
            " #tag ",
            " https://news.example/x ",
            " example.org ",
        ]
    ),
    max_size=300,
).map("".join)
_tags = st.lists(st.text(alphabet="abc XYZ-_é日", min_size=1, max_size=15), max_size=6)

CHANNELS = [
    (x_length, 280),
    (mastodon_length, 500),
    (bluesky_counter, 300),
    (mastodon_length, 140),
    (utf16_length, 2000),  # Discord, Telegram (4096)
    (lambda t: len(slack_escape(t)), 3000),
    (lambda t: len(little_text(t)), 3000),  # LinkedIn
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.text(alphabet="Harbour ferry 港 🚢 Київ é&<>", min_size=1, max_size=120),
    summary=_words,
    tags=_tags,
    channel=st.sampled_from(CHANNELS),
    hashtags=st.integers(0, 5),
)
def test_every_composed_snippet_fits_under_its_own_counter(title, summary, tags, channel, hashtags):
    counter, limit = channel
    post = make_post(7, title=title.strip() or "T", summary=summary, tags=tuple(tags))
    try:
        s = _compose(post, counter=counter, limit=limit, hashtags=hashtags)
    except DistribError as e:
        assert "cannot fit channel test" in str(e)
        return
    assert s.length == counter(s.text) <= limit
    assert s.link in s.text  # the link is whole
    assert len(s.hashtags) <= hashtags
    for tag in s.hashtags:
        assert tag in s.text.split()
    if counter is bluesky_counter:
        graphemes, size = bluesky_length(s.text)
        assert graphemes <= 300 and size <= 3000
    # No URL of the text was cut into something else: every URL found is one we gave.
    for _, _, url in iter_urls(s.text):
        assert url in (s.link, "https://news.example/x", "example.org") or url.startswith(
            "https://news.example/x"
        )
