"""A corpus of hostile share texts for the reference comparison (deterministic).

Fixed pieces (emoji sequences twemoji knows and does not, flags, keycaps, skin tones,
CJK, Arabic, Hebrew, Devanagari, combining marks, bidi controls, IDN and new-TLD URLs,
mentions, hashtags, cashtags, general punctuation), each alone, then random joins of
them with assorted separators.
"""

from __future__ import annotations

import random

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
TRANS_FLAG = "\U0001f3f3\ufe0f\u200d\u26a7\ufe0f"
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
GENERAL_PUNCT = "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u200c\u200d ‐ ‑ ‒ – — ― ‖ ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷"
CJK_POEM = "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。"
KANA = "あいうえおかきくけこ"

EMOJI = [
    FAMILY,
    TRANS_FLAG,
    RAINBOW_FLAG,
    ENGLAND,
    "\U0001f1fa\U0001f1e6",  # flag UA
    "\U0001f1ef\U0001f1f5\U0001f1fa",  # a flag and a lone regional indicator
    "#\ufe0f\u20e3",
    "1\ufe0f\u20e3",
    "1\u20e3",
    "*\ufe0f\u20e3",
    "\U0001f44b\U0001f3fd",
    "\U0001f9d5\U0001f3fe",
    "\u263a",
    "\u263a\ufe0f",
    "\u263a\ufe0e",
    "\u2764",
    "\u2764\ufe0f",
    "\u2764\ufe0e",
    "\xa9",
    "\xa9\ufe0f",
    "\u2122\ufe0f",
    "\u203c\ufe0f",
    "\U0001f3f3\ufe0f",
    "\U0001f468\u200d\U0001f3a4",
    "\U0001f64b\U0001f3fd",
    "\U0001f92a",
    "\U0001fae0",  # Unicode 14: unknown to twemoji-parser 11
    "\U0001f9d1\u200d\U0001f91d\u200d\U0001f9d1",
    "\U0001f469\U0001f3fd\u200d\U0001f4bb",
    "\U0001f637\U0001f47e\U0001f621\U0001f525\U0001f4a9",
    "\u200d",
    "\ufe0f",
    "\U0001f431",
    "\U00010000\U0010ffff",
]
SCRIPTS = [
    "日本語のテキスト",
    CJK_POEM,
    "한국어",
    "مرحبا بالعالم",
    "שָׁלוֹם",
    "Aשּׁ",
    "नमस्ते",
    "क्ष क्\u200dष क्\u200cष",
    "e\u0301",
    "a\u0301\u0302",
    "U\u0308ber",
    "\u212b",
    "\ufb01",
    "Привет, мир",
    "ÁB",
    "Ελληνικά",
    "\U0001d400",
    "ſ K",  # long s, Kelvin sign: case rules differ between engines
]
BIDI = [
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u200e",
    "\u200f",
    "\u061c",
]
INVALID = ["\ufeff", "\ufffe", "\uffff"]
URLS = [
    "https://example.com",
    "example.com",
    "example.com.",
    "https://meetup.harbour.engineering/talks?id=9",
    "harbour.engineering",
    "https://例え.jp/パス",
    "https://例え.jp/ab",
    "http://☃.net/",
    "http://☃-.net/",
    "https://xn--fsq.jp/a",
    "http://foobar.پاکستان/",
    "https://t.co/abc123?x=1",
    "https://t.co/" + "a" * 45,
    "HTTPS://WWW.EXAMPLE.COM/A",
    "Https://News.Example.org/x",
    "https://en.wikipedia.org/wiki/Ferry_(boat)",
    "https://a.org/x)",
    "(https://a.org/x)",
    "https://a.org/x.",
    "https://a.org/x!",
    "www.example.co.uk/path?q=1",
    "https://news.example/a",
    "news.example",
    "example.test",
    "foo.bar",
    "ama@example.com",
    "https://example.com:8080/a",
    "https://user:pass@example.com/login",
    "http://" + KANA * 5 + "あいう.com",
    "http://" + KANA * 5 + "あい.com",
    "randomurl" * 7 + "s.com",
    "https://example.com/ab\U0001f600",
    "\U0001f600https://example.com",
    "https://example.com\U0001f600/x",
    "example.com\U0001f600",
    "日本.com",
    "abc.com日本.com/path",
    "-example.com",
    "_x.example.com",
    "/example.com",
    "http://example.com?foo=$bar.;baz?BAZ&c=d-#top/?stories+",
    "https://example.com/Русские_слова",
    "https://www.youtube.com/playlist?list=PL0ZPu8XSRTB7wZzn0mLHMvyzVFeRxbWn-",
    "http://test_underscore.twitter.com",
    "https://somesuperlongurl" * 1 + "somesuperlongurl" * 5 + ".com/foo",
    "httpbin.org",
    "http://example.com/#anchor",
    "ftp://example.com/x",
    "https://example.рф/путь",
    "пример.рф",
    "https://münchen.de",
    "münchen.de",
    "https://example.com/a%20b?c=d#e",
    "Link:https://example.com/x",
]
MENTIONS = [
    "@kofi",
    "@ama@social.example",
    "@ama@social.example.org",
    "@news.harbourlight.org",
    "(@handle.com)",
    "@Handle.COM",
    "@x.test",
    "@user@mastodon.social",
    "@user@mastodon.social://x",
    "@user_name.x-y@host-1.example",
    "=@not",
    "a@b.com",
    "@@double",
    "@ＡＢ",
    "@İ@user",
    "@ſam@host.org",
    "@\u212aofi@social.example.org",
]
TAGS = [
    "#ok",
    "#日本語",
    "#123",
    "#1st",
    "(#inparens)",
    "#tag!",
    "#a_b",
    "＃full",
    "#a\u200dz",
    "#\u00adx",
    "#!",
    "#" + "x" * 70,
    "#" + "\U0001f600" * 40,
    "$AAPL",
    "$aapl.",
    "($TSLA)",
    "$TOOLONG",
    "$A1",
    "#example.com",
    "$example.com",
]
PUNCT = [GENERAL_PUNCT, "…", "“quoted” — dash…", "‼️", "⁉", "...", ",", "!?", "«»", "&amp;"]
SEPARATORS = [" ", " ", " ", "\n", "\n\n", "\u3000", "\t", "", "\u00a0", "\u2028", " — "]

ISSUE_CASES = [
    TRANS_FLAG * 45,
    "\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069",
    "\u2067https://meetup.harbour.engineering/talks?id=9\u2069",
    "ABC\u202a\uffffABC\ufffe",
    KANA * 12 + " http://" + KANA * 5 + "あいう.com",
    KANA * 12 + " http://" + KANA * 5 + "あい.com",
    "This is a tweet with general punctuation characters: " + GENERAL_PUNCT,
    (GENERAL_PUNCT + " " + FAMILY + " ") * 3,
    "Read more at https://meetup.harbour.engineering/talks?id=9 " + "x" * 200,
    "#\ufe0f\u20e3 2\ufe0f\u20e3",
    "Harbour news (#inparens) https://a.org/x\U0001f600 HTTPS://X.COM @news.harbourlight.org",
    "",
    " ",
    "x" * 280,
    "x" * 281,
]


def corpus(n_random: int = 400, seed: int = 10) -> list[str]:
    """The fixed pieces, the issue's cases, then ``n_random`` random joins (deduplicated)."""
    pieces = EMOJI + SCRIPTS + BIDI + URLS + MENTIONS + TAGS + PUNCT
    out = list(ISSUE_CASES) + pieces + [f"see {p} now" for p in URLS + MENTIONS + TAGS]
    rng = random.Random(seed)
    for _ in range(n_random):
        k = rng.randint(2, 7)
        words = [rng.choice(pieces) for _ in range(k)]
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words) + 1), rng.choice(BIDI + INVALID))
        text = words[0]
        for w in words[1:]:
            text += rng.choice(SEPARATORS) + w
        out.append(text)
    seen: set[str] = set()
    return [t for t in out if not (t in seen or seen.add(t))]
