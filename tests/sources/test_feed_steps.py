"""The feed parser's rarer steps: broken XML whose entries all lack a link, and JSON Feed
item ids that are not strings."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from distrib.errors import SourceError
from distrib.sources.feed import parse_feed

BROKEN_NO_LINKS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Harbour</title>
<item><title>Only a guid</title><guid isPermaLink="false">abc-1</guid>
<description>No link & no close</description></item>
"""


def test_broken_xml_whose_entries_have_no_link_is_broken_not_empty(caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="distrib.sources"):
        with pytest.raises(SourceError) as e:
            parse_feed(BROKEN_NO_LINKS, source="f", url="https://h.example/feed")
    text = str(e.value)
    assert text.startswith("source 'f': not a feed: broken XML (") and "\n" not in text
    assert text.endswith("; check the url")
    # the entries' own warnings are held back: the one error line says it all
    assert not [r for r in caplog.records if "without a link" in r.getMessage()]


def test_json_item_ids_that_are_not_strings() -> None:
    items = [
        {"id": True, "url": "https://h.example/a?utm_source=rss", "title": "Bool id"},
        {"id": 42, "url": "https://h.example/b", "title": "Number id"},
        {"id": {"x": 1}, "url": "https://h.example/c", "title": "Object id"},
        {"url": "https://h.example/d", "title": "No id"},
    ]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items})
    posts = parse_feed(body.encode(), source="j", url="https://h.example/feed.json")
    assert [(p.title, p.key) for p in posts] == [
        ("Bool id", "https://h.example/a"),
        ("Number id", "h.example:42"),
        ("Object id", "https://h.example/c"),
        ("No id", "https://h.example/d"),
    ]
