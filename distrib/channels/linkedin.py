"""LinkedIn: the versioned Posts API (https://learn.microsoft.com/linkedin/marketing/community-management/shares/posts-api).

* ``POST /rest/posts`` with ``LinkedIn-Version`` (YYYYMM; LinkedIn supports a version
  for about a year, so it is an option) and ``X-Restli-Protocol-Version: 2.0.0``; the
  new post's URN comes back in the ``x-restli-id`` header.
* The commentary is "little text" (https://learn.microsoft.com/linkedin/marketing/community-management/shares/little-text-format):
  ``\\ | { } @ [ ] ( ) < > # * _ ~`` are escaped with a backslash, and hashtags are
  written as ``{hashtag|\\#|Tag}`` so they stay hashtags.  At most 3000 characters.
* The link goes in an article card (``content.article``), not only in the text.
* A 422 saying the content is a duplicate means a dead run's post went out: sent.
* Versions: LinkedIn serves each monthly version for at least a year, then answers
  ``426 NONEXISTENT_VERSION``.  That is a configuration error: the channel stops for the
  run (its posts wait) and the message says which ``version`` to set.  ``distrib check``
  warns when the configured version is within two months of its sunset
  (https://learn.microsoft.com/linkedin/marketing/integrations/migrations).
* A 401/403 (tokens last 60 days) stops the channel for the run; its posts wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, ClassVar

from ..model import Outcome, Post, Snippet
from ..render.snippets import facets_for
from ..schema import Ctx, Invalid, Opt, choice, k_env_name, k_positive, k_str, k_url
from .base import AuthFailed, ShareChannel

LIMIT = 3000

#: LinkedIn-Version values and the day LinkedIn stops serving them, from LinkedIn's
#: migrations table.  A version not listed is taken to be served until the 15th of its
#: month a year later (LinkedIn's stated minimum).
VERSIONS: dict[str, date] = {
    "202510": date(2026, 10, 15),
    "202511": date(2026, 11, 16),
    "202601": date(2027, 1, 15),
    "202602": date(2027, 2, 15),
    "202603": date(2027, 3, 16),
}
#: The default: the newest version LinkedIn had released when this was written.
DEFAULT_VERSION = "202607"
#: ``distrib check`` warns this long before a version's sunset.
SUNSET_WARNING = timedelta(days=61)


def sunset(version: str) -> date | None:
    """When LinkedIn stops serving ``version`` (YYYYMM), or None if it is not a version."""
    if version in VERSIONS:
        return VERSIONS[version]
    m = re.fullmatch(r"(20\d\d)(0[1-9]|1[0-2])", version)
    if not m:
        return None
    return date(int(m.group(1)) + 1, int(m.group(2)), 15)


def newest_version(today: date) -> str:
    """The newest version we know of that is served on ``today`` (for messages)."""
    candidates = sorted({*VERSIONS, DEFAULT_VERSION})
    served = [v for v in candidates if (sunset(v) or today) > today]
    return served[-1] if served else DEFAULT_VERSION


def version_warning(version: str, today: date) -> str | None:
    """A line for ``distrib check`` when ``version`` is past or near its sunset."""
    end = sunset(version)
    if end is None:
        return f"version {version!r} is not a LinkedIn-Version (YYYYMM, such as {newest_version(today)!r})"
    if end <= today:
        return (
            f"LinkedIn stopped serving version {version} on {end:%d %B %Y}; every post would fail. "
            f'Set version = "{newest_version(today)}"'
        )
    if end - today <= SUNSET_WARNING:
        return (
            f"LinkedIn stops serving version {version} on {end:%d %B %Y} ({(end - today).days} days); "
            f'set version = "{newest_version(today)}" before then'
        )
    return None


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
            k_env_name,
            None,
            "environment variable holding an OAuth access token with w_member_social",
            required=True,
        ),
        "author": Opt(
            k_author,
            None,
            "who posts: 'urn:li:person:ID' or 'urn:li:organization:ID'",
            required=True,
        ),
        "api_url": Opt(k_url, "https://api.linkedin.com", "the API's base URL"),
        "version": Opt(
            k_str,
            DEFAULT_VERSION,
            "the LinkedIn-Version header (YYYYMM); LinkedIn retires a version after a year, `distrib check` warns before",
        ),
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

    @property
    def version(self) -> str:
        return str(self.opt("version", DEFAULT_VERSION))

    def check_warnings(self, today: date) -> tuple[list[str], list[str]]:
        """(problems, warnings) for ``distrib check`` (today: the real date): a version
        LinkedIn no longer serves is a problem, one within two months of it a warning."""
        text = version_warning(self.version, today)
        if text is None:
            return [], []
        end = sunset(self.version)
        line = f"channel {self.name}: {text}"
        return ([line], []) if end is None or end <= today else ([], [line])

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        token = self.ctx.settings.secret(self.opts, "token_env")
        base = str(self.opt("api_url", "https://api.linkedin.com")).rstrip("/")
        r = self.request(
            "POST",
            f"{base}/rest/posts",
            json=self.payload(snippet, post),
            headers={
                "Authorization": f"Bearer {token}",
                "LinkedIn-Version": self.version,
                "X-Restli-Protocol-Version": "2.0.0",
            },
        )
        if r.status_code in (200, 201):
            return Outcome.sent(remote_id=r.headers.get("x-restli-id", ""))
        if r.status_code == 422 and "duplicate" in r.text.lower():
            return Outcome.sent(remote_id=_urn(r.text))
        if r.status_code == 426:
            # NONEXISTENT_VERSION / "Version Header is Deprecated": our configuration,
            # not this post, is wrong.  Stop the channel; the posts wait for the fix.
            today = self.ctx.now.date()
            raise AuthFailed(
                f"channel {self.name}: LinkedIn no longer serves version {self.version} "
                f'(426 {_error_code(r)}); set version = "{newest_version(today)}" in this channel. '
                f"Its posts wait for the next run",
                retry_after=1,
            )
        if r.status_code in (401, 403):
            raise self.auth_failed(
                r.status_code,
                f"renew the token in {self.opts.get('token_env')} (LinkedIn tokens last 60 days) with "
                f"w_member_social (or w_organization_social)",
            )
        raise self.fail(r, "posting to LinkedIn")

    def describe(self) -> str:
        return "on LinkedIn"


def _urn(text: str) -> str:
    m = re.search(r"urn:li:(?:share|ugcPost):\d+", text)
    return m.group(0) if m else ""


def _error_code(r: Any) -> str:
    try:
        data = r.json()
    except ValueError:
        return "NONEXISTENT_VERSION"
    return (
        str((data or {}).get("code") or "NONEXISTENT_VERSION")
        if isinstance(data, dict)
        else "NONEXISTENT_VERSION"
    )
