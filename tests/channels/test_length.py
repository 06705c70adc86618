"""Length engines against the rules the networks document.

X cases follow twitter-text's conformance/validate.yml (WeightedTweetsCounterTest, v3
config): weights by code point range, emoji sequences weigh 2, every URL 23.
"""

from __future__ import annotations

import pytest

from distrib.render.length import (
    bluesky_length,
    graphemes,
    iter_urls,
    mastodon_length,
    x_length,
    x_valid,
)

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 👨‍👩‍👧‍👦
FLAG_UA = "\U0001f1fa\U0001f1e6"  # 🇺🇦
KEYCAP_1 = "1\ufe0f\u20e3"  # 1️⃣
WAVE_MEDIUM = "\U0001f44b\U0001f3fd"  # 👋🏽
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("This is a test.", 15),  # Latin: weight 1 each
        ("Привет, мир", 11),  # Cyrillic is inside U+0000-U+10FF
        ("مرحبا بالعالم", 13),  # Arabic too
        ("नमस्ते", 6),  # Devanagari: 6 code points (marks count)
        ("日本語のテキスト", 16),  # CJK: weight 2 each
        ("한국어", 6),  # Hangul: weight 2
        ("“quoted” — dash…", 17),  # U+2010-U+201F and U+2026 (outside: 2)
        ("\U0001d400", 2),  # mathematical bold A: outside the light ranges
        ("😷👾😡🔥💩", 10),  # emoji weigh 2 each
        ("H🐱☺" + FAMILY, 7),  # the conformance mix: ☺ (U+263A) weighs 2, the family 2
        (FAMILY, 2),
        (FLAG_UA, 2),
        (KEYCAP_1, 2),
        ("#\ufe0f\u20e3", 2),
        (WAVE_MEDIUM, 2),
        (RAINBOW_FLAG, 2),
        (SCOTLAND, 2),
        ("❤\ufe0f", 2),  # VS16 makes a text symbol an emoji
        ("U\u0308ber", 4),  # NFC joins U + combining diaeresis into Ü
        ("a\u0301\u0302", 2),  # no precomposed form: base + two marks -> a-acute + mark
        ("x" * 280, 280),
    ],
)
def test_x_weighted_length(text, expected):
    assert x_length(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://example.com", 23),
        ("http://example.com/" + "a" * 200, 23),  # a long URL still counts 23
        ("see example.com", 4 + 23),  # bare domains with a valid TLD are links
        ("see example.com.", 4 + 23 + 1),  # the sentence's full stop is not part of it
        ("www.example.co.uk/path?q=1", 23),
        # RFC 2606 names: not top-level domains, so twitter-text links neither
        ("example.test and news.example", 29),
        ("foo.bar", 23),  # .bar is a real top-level domain (the whole IANA list counts)
        ("https://meetup.harbour.engineering/talks?id=9", 23),  # a new gTLD
        ("foo.notatld", 11),
        ("Link:https://example.com/x", 5 + 23),
        ("#example.com $example.com", 25),  # a hashtag or cashtag is not a domain
        ("mail me: ama@example.com", 9 + 15),  # an address is not a URL
        ("(https://en.wikipedia.org/wiki/Ferry_(boat))", 1 + 23 + 1),
        ("two https://a.org/x https://b.org/y", 4 + 23 + 1 + 23),
        ("https://例え.jp/ab", 23),  # IDN host with a scheme
        (
            "https://例え.jp/パス",
            23 + 4,
        ),  # katakana is not a URL path character: the URL ends at '/'
        ("日本語 https://example.jp/", 6 + 1 + 23),
    ],
)
def test_x_urls_count_23(text, expected):
    assert x_length(text) == expected


def test_url_recogniser_finds_exact_spans():
    text = "Read https://news.example.org/a?b=1. Or example.org/x), ok"
    assert [u for _, _, u in iter_urls(text)] == ["https://news.example.org/a?b=1", "example.org/x"]
    assert [u for _, _, u in iter_urls(text, require_scheme=True)] == [
        "https://news.example.org/a?b=1"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", 5),
        ("日本語", 3),  # graphemes, not weights
        (FAMILY + FLAG_UA + KEYCAP_1, 3),
        ("e\u0301", 1),
        ("https://example.com/" + "a" * 100, 23),
        ("example.com", 11),  # Mastodon links only URLs with a scheme
        ("cc @ama@social.example, @kofi", 3 + 4 + 2 + 5),  # remote mention counts @user
        ("ftp://example.com/x", 19),
    ],
)
def test_mastodon_length(text, expected):
    assert mastodon_length(text) == expected


def test_mastodon_url_length_follows_the_instance():
    assert mastodon_length("go https://example.com/" + "x" * 50, url_length=30) == 33


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", (5, 5)),
        ("Привет", (6, 12)),
        ("日本語", (3, 9)),
        (FAMILY, (1, 25)),
        (FLAG_UA, (1, 8)),
        ("https://example.com/" + "a" * 10, (30, 30)),  # Bluesky counts a URL as written
    ],
)
def test_bluesky_length(text, expected):
    assert bluesky_length(text) == expected


def test_graphemes_keep_sequences_whole():
    assert graphemes("a" + FAMILY + "e\u0301" + FLAG_UA) == ["a", FAMILY, "e\u0301", FLAG_UA]


# --- the cases issue 10 found, with the values the references give ----------------------------
# (npm twitter-text 3.1.0 parseTweet; tests/reference/test_oracle.py compares a whole corpus)

TRANS_FLAG = "\U0001f3f3\ufe0f\u200d\u26a7\ufe0f"  # not in twemoji-parser 11: counted by its parts
KANA = "あいうえおかきくけこ"
GENERAL_PUNCT = "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u200c\u200d ‐ ‑ ‒ – — ― ‖ ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷"


@pytest.mark.parametrize(
    ("text", "expected", "valid"),
    [
        (TRANS_FLAG, 7, True),  # 🏳️ (2) + ZWJ (1) + ⚧ (2) + VS16 (2)
        (TRANS_FLAG * 45, 315, False),
        ("\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069", 31, True),  # a URL inside isolates
        ("\u2067https://meetup.harbour.engineering/talks?id=9\u2069 ok", 30, True),
        (KANA * 12 + " http://" + KANA * 5 + "あいう.com", 358, False),  # label > 63 in punycode
        (KANA * 12 + " http://" + KANA * 5 + "あい.com", 264, True),
        ("This is a tweet: " + GENERAL_PUNCT + " " + FAMILY + "\u200d" + FAMILY, 81, True),
        ("#\ufe0f\u20e3 2\ufe0f\u20e3", 5, True),
        ("\U0001f600https://example.com", 25, True),
        ("HTTPS://EXAMPLE.COM/a", 23, True),
        ("see meetup.harbour.engineering/talks", 27, True),
        ("", 0, False),
        ("x" * 280, 280, True),
        ("x" * 281, 281, False),
        ("ABC\u202a\uffffABC\ufffe", 12, False),  # U+FFFF / U+FFFE make a tweet invalid
    ],
)
def test_x_length_and_validity_match_twitter_text(text, expected, valid):
    assert x_length(text) == expected
    assert x_valid(text) is valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://meetup.harbour.engineering/talks?id=9", 23),  # .engineering is a TLD
        ("see meetup.harbour.engineering/talks", 36),  # no scheme: not a link on Mastodon
        ("cc @ama@social.example.org and @kofi@mastodon.social", 17),
        (TRANS_FLAG * 45, 45),
        ("\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069", 27),
        ("x https://example.com/\U0001f600", 26),
    ],
)
def test_mastodon_length_matches_its_validator(text, expected):
    assert mastodon_length(text) == expected
