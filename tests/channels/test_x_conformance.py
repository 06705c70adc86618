"""twitter-text's official conformance cases for tweet length (X's counter).

Transcribed from ``conformance/validate.yml`` of https://github.com/twitter/twitter-text
(Apache License 2.0, Copyright Twitter, Inc.): the sections ``WeightedTweetsCounterTest``
(config v2: no emoji parsing), ``WeightedTweetsWithDiscountedEmojiCounterTest`` (config v3,
what X uses) and ``UnicodeDirectionalMarkerCounterTest``.  Each case keeps its
description; the text is written with Python escapes where the YAML has invisible
characters, and long repetitions are spelled as repetitions.  The expectations are the
suite's ``weightedLength`` and ``valid``.
"""

from __future__ import annotations

import pytest

from distrib.render.entities import parse_tweet
from distrib.render.length import x_length, x_valid

X10 = "xxxxxxxxxx-"
POEM = (
    "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。朱雀桥边野草花，乌衣巷口夕阳斜。"
    "旧时王谢堂前燕，飞入寻常百姓家。朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"
    "泪湿罗巾梦不成，夜深前殿按歌声。红颜未老恩先断，斜倚薰笼坐到明。独在异乡为异客，每逢佳节倍思亲。"
    "遥知兄弟登高处，遍插茱萸少一人。"
)
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
PUNCT_TAIL = " ‐ ‑ ‒ – — ― ‖  ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷"
PUNCT_HEAD = "This is a tweet with general punctuation characters: "
KANA = "あいうえおかきくけこ"
# Three URLs whose one label is far over 63 characters (so not URLs), then a short one:
# 12,076 UTF-16 units in the suite, the long labels 747 x "somesuperlongurl" in all.
LONG_URLS = (
    "Long url with invalid domain labels and a short url: "
    + " ".join("https://" + "somesuperlongurl" * 249 + ".com/foo" for _ in range(3))
    + " https://validurl.com"
)

COMMON = [
    ("Regular Tweet with url", "Hi http://test.co", 26, True),
    ("Just url", "http://test.co", 23, True),
    ("Long tweet, overflow at char index 280", "285 chars-" + X10 * 25, 285, False),
    (
        "Long tweet with url in the middle",
        "285 chars- http://www.twitter.com/jack " + X10 * 24,
        299,
        False,
    ),
    ("Long tweet with url at the end", X10 * 24 + " http://www.twitter.com/jack ", 289, False),
    ("10 url string, no overflow", "https://www.twitter.com/aloha " * 10, 240, True),
    ("160 CJK char, overflow at char index 140", POEM, 320, False),
    ("160 emoji char, overflow at char index 140", "\U0001f637" * 160, 320, False),
    ("3 latin char + 160 CJK char", "the" + POEM, 323, False),
    (
        "282 chars with a normalized character",
        "282 chars-" + X10 * 24 + "xxxxxA\u0301x",
        281,
        False,
    ),
    (
        "Count unicode emoji chars inside the BMP",
        "\U0001f637\U0001f47e\U0001f621\U0001f525\U0001f4a9",
        10,
        True,
    ),
    ("Handle long url with invalid domain labels and short url", LONG_URLS, 12079, False),
    ("Handle a 64 character domain without protocol", "randomurl" * 7 + "s.com", 68, True),
    (
        "> 63 punycode chars in the host",
        KANA * 12 + " http://" + KANA * 5 + "あいう.com",
        358,
        False,
    ),
    ("< 63 punycode chars in the host", KANA * 12 + " http://" + KANA * 5 + "あい.com", 264, True),
]

DISCOUNTED_EMOJI = [
    *COMMON,
    (
        "Count a mix of single byte single word, and double word",
        "H\U0001f431\u263a" + FAMILY,
        7,
        True,
    ),
    (
        "Count emoji with skin tone modifiers",
        "\U0001f64b\U0001f3fd\U0001f468\u200d\U0001f3a4",
        4,
        True,
    ),
    (
        "Handle General Punctuation Characters (u2000-200A), no ZWJ/ZWNJ",
        PUNCT_HEAD
        + "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b"
        + PUNCT_TAIL,
        110,
        True,
    ),
    ("140 family emoji", FAMILY * 140, 280, True),
    (
        "Unicode 10.0 emoji",
        "Unicode 10.0 emoji: \U0001f92a; \U0001f9d5; \U0001f9d5\U0001f3fe; "
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
        34,
        True,
    ),
    (
        "Unicode 9.0 emoji",
        "Unicode 9.0 emoji: \U0001f920; \U0001f483; \U0001f483\U0001f3fe",
        29,
        True,
    ),
]

WEIGHTED_V2 = [
    *COMMON,
    ("'Á' is normalized into 1 char", "A\u0301B", 2, True),
    ("שּׁ is normalized into 3 chars", "A\ufb2c", 4, True),
    (
        "Count a mix of single byte single word, and double word",
        "H\U0001f431\u263a" + FAMILY,
        16,
        True,
    ),
    (
        "Count emoji with skin tone modifiers",
        "\U0001f64b\U0001f3fd\U0001f468\u200d\U0001f3a4",
        9,
        True,
    ),
    (
        "Handle General Punctuation Characters (u2000-200A)",
        PUNCT_HEAD
        + "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u200c\u200d"
        + PUNCT_TAIL,
        112,
        True,
    ),
]

DIRECTIONAL = [
    ("Handle invalid characters", "ABC\u202a\uffffABC\ufffe", 12, False),
    (
        "Tweet text containing directional characters should be considered valid",
        "\u2066\u202ahttp://foobar.\u067e\u0627\u06a9\u0633\u062a\u0627\u0646/\u202c\u2069",
        31,
        True,
    ),
]


def _ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize(
    ("description", "text", "length", "valid"),
    DISCOUNTED_EMOJI + DIRECTIONAL,
    ids=_ids(DISCOUNTED_EMOJI + DIRECTIONAL),
)
def test_weighted_tweets_with_discounted_emoji_v3(description, text, length, valid):
    assert (x_length(text), x_valid(text)) == (length, valid)


@pytest.mark.parametrize(
    ("description", "text", "length", "valid"), WEIGHTED_V2, ids=_ids(WEIGHTED_V2)
)
def test_weighted_tweets_v2_without_emoji_parsing(description, text, length, valid):
    assert parse_tweet(text, emoji=False) == (length, valid)


def test_the_long_url_case_has_the_suites_size():
    assert len(LONG_URLS.encode("utf-16-le")) // 2 == 12076  # displayRangeEnd 12075
