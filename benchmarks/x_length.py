"""How long the share-text counters take on a typical post (prints the figures).

    python benchmarks/x_length.py

A 290-character post: a title, a summary with a few emoji (one ZWJ family, a flag), a
CJK phrase, hashtags and a UTM-tagged link; plus a plain-ASCII post of the same size.
"""

from __future__ import annotations

import timeit

from distrib.render.length import mastodon_length, x_length
from distrib.render.snippets import facets_for

MIXED = (
    "Harbour council votes on the new ferry line 🚢 — 港の新しいフェリー\n\n"
    "The council met on Tuesday and after a debate about costs 👨‍👩‍👧‍👦 🇺🇦, "
    "voted to start a ferry line by next spring.\n\n#Ferries #LocalPolitics\n\n"
    "https://news.example.org/posts/ferry-line?utm_source=x&utm_medium=social&utm_campaign=share"
)
ASCII = (
    "A" * (len(MIXED) - 89)
    + " https://news.example.org/posts/ferry-line?utm_source=x&utm_medium=social&utm_campaign=s"
)


def per_call_ms(fn: object, text: str, number: int = 2000) -> float:
    fn(text)  # type: ignore[operator]  # warm the pattern caches
    return timeit.timeit(lambda: fn(text), number=number) / number * 1000  # type: ignore[operator]


def main() -> None:
    for name, text in (("mixed", MIXED), ("ascii", ASCII)):
        print(
            f"{name} post ({len(text)} chars): x_length {per_call_ms(x_length, text):.3f} ms, "
            f"mastodon_length {per_call_ms(mastodon_length, text):.3f} ms, "
            f"facets_for {per_call_ms(facets_for, text):.3f} ms"
        )


if __name__ == "__main__":
    main()
