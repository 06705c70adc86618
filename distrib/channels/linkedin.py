"""LinkedIn: the versioned Posts API (https://learn.microsoft.com/linkedin/marketing/community-management/shares/posts-api).

* ``POST /rest/posts`` with ``LinkedIn-Version`` (YYYYMM; LinkedIn supports a version
  for about a year, so it is an option) and ``X-Restli-Protocol-Version: 2.0.0``; the
  new post's URN comes back in the ``x-restli-id`` header.
* The commentary is "little text" (https://learn.microsoft.com/linkedin/marketing/community-management/shares/little-text-format):
  ``\\ | { } @ [ ] ( ) < > # * _ ~`` are escaped with a backslash, and hashtags are
  written as ``{hashtag|\\#|Tag}`` so they stay hashtags.  At most 3000 characters.
* The link goes in an article card (``content.article``), not only in the text.
* A 422 saying the content is a duplicate means a dead run's post went out: sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from ..errors import DeliveryError
from ..model import Outcome, Post, Snippet
from ..render.snippets import facets_for
from ..schema import Ctx, Invalid, Opt, choice, k_env_name, k_positive, k_str, k_url
from .base import ShareChannel

LIMIT = 3000
_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")


def little_text(text: str) -> str:
    """``text`` as LinkedIn little text: reserved characters escaped, hashtags kept."""
    out = []
    pos = 0
    raw = text.encode("utf-8")
    for facet in facets_for(text):
        if facet.kind != "tag":
            continue
        start = len(raw[: facet.byte_start].decode("utf-8"))
        end = len(raw[: facet.byte_end].decode("utf-8"))
        out.append(_RESERVED.sub(r"\\\1", text[pos:start]))
        out.append("{hashtag|\\#|" + _RESERVED.sub(r"\\\1", facet.value) + "}")
        pos = end
    out.append(_RESERVED.sub(r"\\\1", text[pos:]))
    return "".join(out)


def k_author(v: Any, ctx: Ctx) -> str:
    if isinstance(v, str) and re.fullmatch(r"urn:li:(?:person|organization):[A-Za-z0-9_-]+", v):
        return v
    raise Invalid("an author URN such as 'urn:li:person:abc123' or 'urn:li:organization:5515715'")


class LinkedInChannel(ShareChannel):
    network: ClassVar[str] = "linkedin"
    options: ClassVar[dict[str, Opt]] = {
        "token_env": Opt(
            k_env_name, None, "environment variable holding an OAuth access token with w_member_social", required=True
        ),
        "author": Opt(
            k_author, None, "who posts: 'urn:li:person:ID' or 'urn:li:organization:ID'", required=True
        ),
        "api_url": Opt(k_url, "https://api.linkedin.com", "the API's base URL"),
        "version": Opt(k_str, "202510", "the LinkedIn-Version header (YYYYMM); LinkedIn retires a version after a year"),
        "visibility": Opt(choice("PUBLIC", "CONNECTIONS"), "PUBLIC", "who sees the posts"),
        "limit": Opt(k_positive, LIMIT, "characters per post (LinkedIn allows 3000)"),
    }

    def counter(self) -> Callable[[str], int]:
        # What LinkedIn stores is the escaped text; counting it keeps us under its limit.
        return lambda text: len(little_text(text))

    def limit(self) -> int:
        return min(int(self.opt("limit", LIMIT)), LIMIT)

    def payload(self, snippet: Snippet, post: Post) -> dict[str, Any]:
        return {
            "author": self.opt("author"),
            "commentary": little_text(snippet.text),
            "visibility": self.opt("visibility", "PUBLIC"),
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "content": {
                "article": {
                    "source": snippet.link,
                    "title": post.title[:400],
                    "description": " ".join(post.summary.split())[:4000],
                }
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        token = self.ctx.settings.secret(self.opts, "token_env")
        base = str(self.opt("api_url", "https://api.linkedin.com")).rstrip("/")
        r = self.request(
            "POST",
            f"{base}/rest/posts",
            json=self.payload(snippet, post),
            headers={
                "Authorization": f"Bearer {token}",
                "LinkedIn-Version": str(self.opt("version", "202510")),
                "X-Restli-Protocol-Version": "2.0.0",
            },
        )
        if r.status_code in (200, 201):
            return Outcome.sent(remote_id=r.headers.get("x-restli-id", ""))
        if r.status_code == 422 and "duplicate" in r.text.lower():
            return Outcome.sent(remote_id=_urn(r.text))
        if r.status_code in (401, 403):
            raise DeliveryError(
                f"channel {self.name}: LinkedIn refused the token ({r.status_code}); check the token in "
                f"{self.opts.get('token_env')} has w_member_social (or w_organization_social) and has not expired"
            )
        raise self.fail(r, "posting to LinkedIn")

    def describe(self) -> str:
        return "on LinkedIn"


def _urn(text: str) -> str:
    m = re.search(r"urn:li:(?:share|ugcPost):\d+", text)
    return m.group(0) if m else ""
