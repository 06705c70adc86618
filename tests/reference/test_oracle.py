"""distrib's counters against the reference implementations, run through node.

The judge: npm ``twitter-text`` 3.1.0 (X weighted length and validity, in the v3 and v2
configs; the URLs Mastodon counts) and ``@atproto/api`` (Bluesky facets), pinned in
``package.json`` and installed by ``.ci/run`` (``npm ci`` here).  The whole corpus goes to
one node process as JSON on stdin (oracle.mjs); every text must agree exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from distrib.render.entities import bluesky_facets, parse_tweet
from distrib.render.length import mastodon_length
from tests.reference.corpus import corpus

HERE = Path(__file__).resolve().parent
HOW = "install them with: apt-get install nodejs npm && (cd tests/reference && npm ci)"


def _node() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (HERE / "node_modules" / "twitter-text").is_dir() or not (HERE / "node_modules" / "@atproto" / "api").is_dir():
        missing = "tests/reference/node_modules is missing"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: .ci/run must install the references ({HOW})")
        pytest.skip(f"{missing}; the reference implementations are needed: {HOW}")
    assert node is not None
    return node


def run_references(texts: list[str]) -> list[dict[str, Any]]:
    """One node process for the whole batch."""
    proc = subprocess.run(
        [_node(), str(HERE / "oracle.mjs")],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    assert len(results) == len(texts)
    return results


@pytest.fixture(scope="module")
def judged() -> list[tuple[str, dict[str, Any]]]:
    texts = corpus()
    return list(zip(texts, run_references(texts), strict=True))


def _ours(text: str) -> dict[str, Any]:
    weighted, valid = parse_tweet(text)
    weighted2, valid2 = parse_tweet(text, emoji=False)
    return {
        "x": [weighted, valid],
        "x2": [weighted2, valid2],
        "mastodon": mastodon_length(text),
        "bluesky": [[f.byte_start, f.byte_end, f.kind, f.value] for f in bluesky_facets(text)],
    }


def test_the_corpus_is_a_few_hundred_hostile_texts(judged):
    assert len(judged) >= 300
    assert any("\u200d" in t for t, _ in judged) and any("\u2066" in t for t, _ in judged)


@pytest.mark.parametrize("field", ["x", "x2", "mastodon", "bluesky"])
def test_every_text_agrees_with_the_reference(judged, field):
    wrong = [(text, ref[field], _ours(text)[field]) for text, ref in judged if _ours(text)[field] != ref[field]]
    detail = "\n".join(f"{t!r}: reference {r}, distrib {o}" for t, r, o in wrong[:10])
    assert not wrong, f"{len(wrong)} of {len(judged)} texts disagree on {field}:\n{detail}"


def test_the_issue_cases_are_judged_as_the_issue_says(judged):
    ref = dict(judged)
    from tests.reference.corpus import KANA, TRANS_FLAG

    assert ref[TRANS_FLAG * 45]["x"] == [315, False]  # 7 each: 45 x 7
    assert ref[KANA * 12 + " http://" + KANA * 5 + "あいう.com"]["x"] == [358, False]
    assert ref["Harbour news (#inparens) https://a.org/x\U0001f600 HTTPS://X.COM @news.harbourlight.org"][
        "bluesky"
    ] == [
        [25, 40, "link", "https://a.org/x\U0001f600"],
        [60, 83, "mention", "news.harbourlight.org"],
    ]
