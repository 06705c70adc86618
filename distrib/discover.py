"""From a site's address to its sources and identity: what `distrib init URL` writes.

One page is fetched through the one HTTP client (its size cap, timeouts and redirect
limit) and read for what the site itself declares:

- feeds: ``<link rel="alternate">`` of type RSS, Atom or JSON Feed (comment feeds last);
- the WordPress REST API: ``<link rel="https://api.w.org/">`` or the same in the
  ``Link`` header; its root (``/wp-json/``) gives the name, time zone and site icon;
- when nothing is declared, the common feed paths (``/feed``, ``/rss.xml``,
  ``/atom.xml``, ``/index.xml``, ``/feed.json``, ``/feed.xml``), each accepted only
  when it parses as a feed;
- identity: ``og:site_name`` / ``<title>``, ``<html lang>``, a logo (WordPress site
  icon, ``apple-touch-icon``, ``icon``, ``og:image``), ``<meta name="theme-color">``,
  and a postal address from schema.org markup (JSON-LD or microdata).

The WordPress API is preferred when present: it gives authors, categories, tags and
featured images that a feed leaves out.  :func:`render_config` writes the commented
``distrib.toml``.  Nothing here sends anything.

Reading the page is :mod:`distrib.sources.page`, and finding a feed at the common
paths is the feed source's (:mod:`distrib.sources.feed`), which reads a home page given
as its url the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import DistribError, UsageError
from .http import FetchError, HttpClient, HttpResponse
from .sanitize import absolute_http_url
from .sources.feed import feed_in_page, feed_kind, probe_common_paths
from .sources.page import (
    ADDRESS_PROPS,
    COMMON_FEED_PATHS,
    FeedLink,
    PageInfo,
    declared_feeds,
    link_rels,
    looks_like_html,
    parse_page,
    wordpress_api_link,
    wordpress_site_url,
)

#: The largest home page read; a bigger one is refused by the HTTP client's cap.
PAGE_MAX_BYTES = 5_000_000

_COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


class DiscoveryError(DistribError):
    """Nothing usable was found at the address (exit 1: nothing was written)."""

    exit_code = 1


@dataclass
class Discovery:
    """What `distrib init URL` found, and which source it chose."""

    url: str  # the page's final URL, after redirects
    feeds: list[FeedLink] = field(default_factory=list)
    wordpress_api: str | None = None  # the API root, when the site offers one
    wordpress_site: str | None = None  # the site URL the wordpress source takes
    name: str = ""
    description: str = ""
    language: str = ""
    logo: str | None = None
    logo_from: str = ""
    brand_color: str | None = None
    timezone: str | None = None
    postal_address: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def chosen(self) -> str:
        """ "wordpress" or "feed" (or "" when nothing was found)."""
        if self.wordpress_site:
            return "wordpress"
        return "feed" if self.feeds else ""

    @property
    def feed(self) -> FeedLink | None:
        for link in self.feeds:
            if not link.is_comments:
                return link
        return self.feeds[0] if self.feeds else None

    def why(self) -> str:
        """One line: which source was chosen and why."""
        if self.chosen == "wordpress":
            also = f" (a feed is there too: {self.feed.url})" if self.feed else ""
            return (
                f"chose the WordPress REST API at {self.wordpress_api}: it gives authors, "
                f"categories, tags and featured images that a feed leaves out{also}"
            )
        feed = self.feed
        if feed is None:
            return "found no feed"
        how = (
            'declared by the page\'s <link rel="alternate">'
            if feed.how == "declared"
            else "found at a common feed path (the page declares none)"
        )
        others = len(self.feeds) - 1
        more = (
            f"; {others} other feed{'s' if others != 1 else ''} listed in the config as comments"
            if others
            else ""
        )
        return f"chose the {feed.kind} feed {feed.url}, {how}{more}"


# --- identity ------------------------------------------------------------------------


def _logo(info: PageInfo, base: str) -> tuple[str | None, str]:
    def size(link: dict[str, str]) -> int:
        m = re.match(r"(\d+)x(\d+)", link.get("sizes", "").strip().lower())
        return int(m.group(1)) if m else 0

    def usable(url: str | None) -> bool:
        # An email client shows neither SVG nor ICO reliably.
        return bool(url) and not urlsplit(url or "").path.lower().endswith((".svg", ".ico"))

    for rel, label in (("apple-touch-icon", "apple-touch-icon"), ("icon", "icon")):
        links = [
            link
            for link in info.links
            if rel in link_rels(link) and "image/svg" not in link.get("type", "")
        ]
        for link in sorted(links, key=size, reverse=True):
            url = absolute_http_url(link.get("href", ""), base)
            if usable(url):
                return url, f'<link rel="{label}">'
    og = absolute_http_url(info.meta.get("og:image", ""), base)
    if usable(og):
        return og, "og:image"
    return None, ""


def _address_from_ld(data: Any, depth: int = 0) -> str:
    if depth > 8:
        return ""
    if isinstance(data, list):
        for item in data:
            found = _address_from_ld(item, depth + 1)
            if found:
                return found
        return ""
    if not isinstance(data, dict):
        return ""
    address = data.get("address")
    if isinstance(address, str) and address.strip():
        return " ".join(address.split())
    if isinstance(address, list) and address:
        address = address[0]
    if isinstance(address, dict):
        text = _join_address(address)
        if text:
            return text
    for key in ("@graph", "publisher", "author", "location", "organization", "sourceOrganization"):
        if key in data:
            found = _address_from_ld(data[key], depth + 1)
            if found:
                return found
    return ""


def _join_address(parts: dict[str, Any]) -> str:
    values = []
    for prop in ADDRESS_PROPS:
        value = parts.get(prop)
        if isinstance(value, dict):  # addressCountry may be a Country object
            value = value.get("name")
        if isinstance(value, str) and value.strip():
            values.append(" ".join(value.split()))
    return ", ".join(values)


def _language(info: PageInfo) -> str:
    lang = info.lang or info.meta.get("og:locale", "").replace("_", "-")
    return lang if _LANG_RE.match(lang) else ""


def _timezone(api: dict[str, Any]) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = api.get("timezone_string")
    if isinstance(name, str) and name:
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError):
            return None
    offset = api.get("gmt_offset")
    try:
        hours = float("" if offset is None else offset)  # missing: ValueError, as bad text
    except (TypeError, ValueError):
        return None
    if hours == 0:
        return "UTC"
    if hours.is_integer() and -14 <= hours <= 12:
        return f"Etc/GMT{-int(hours):+d}"  # the Etc zones count the other way
    return None


# --- the whole discovery -------------------------------------------------------------


def _http_url(url: str) -> str:
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not a web address; give one such as https://example.org/")
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def discover(url: str, http: HttpClient) -> Discovery:
    """Fetch ``url`` and find its sources and identity; DiscoveryError if no source."""
    resp = _fetch_home_page(_http_url(url), http)
    if not looks_like_html(resp.body, resp.content_type):
        return _given_feed(resp)
    info = parse_page(resp.text())
    base = resp.url
    found = Discovery(url=base, feeds=declared_feeds(info, base))
    api = wordpress_api_link(info, resp.headers, base)
    api_data = _read_wordpress_api(found, api, http) if api else {}
    if not found.feeds and not api:
        found.feeds = probe_common_paths(base, http)
    if not found.chosen:
        tried = ", ".join(COMMON_FEED_PATHS)
        raise DiscoveryError(
            f'found no feed at {base}: the page declares none (<link rel="alternate">), offers no '
            f"WordPress API, and none of {tried} answered a feed; run `distrib init FEED-URL` with the feed's address"
        )
    _read_identity(found, info, api_data)
    return found


def _fetch_home_page(url: str, http: HttpClient) -> HttpResponse:
    """The page at ``url`` (after redirects); DiscoveryError when it cannot be read."""
    try:
        return http.get(
            url,
            headers={"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"},
            conditional=False,
        )
    except FetchError as e:
        raise DiscoveryError(f"cannot read the site: {e}") from None


def _given_feed(resp: HttpResponse) -> Discovery:
    """The address given is not a web page: the feed it is, or DiscoveryError."""
    kind = feed_kind(resp)
    if kind is None:
        raise DiscoveryError(
            f"{resp.url} is neither a web page nor a feed (got {resp.content_type or 'no content type'}); "
            "give the site's home page or its feed's address"
        )
    found = Discovery(url=resp.url)
    found.feeds.append(FeedLink(resp.url, kind, how="given"))
    found.notes.append(
        f"{resp.url} is a {kind} feed itself; the site's name and logo come from the feed's home page when set"
    )
    return found


def _read_wordpress_api(found: Discovery, api: str, http: HttpClient) -> dict[str, Any]:
    """Record the WordPress API root and the site it serves; its root's JSON (name, time
    zone, site icon), or {} with a note when it does not answer usably."""
    found.wordpress_api = api
    found.wordpress_site = wordpress_site_url(api)
    api_data: dict[str, Any] = {}
    try:
        root = http.get(api, headers={"Accept": "application/json"}, conditional=False)
        data = json.loads(root.body.decode("utf-8", "replace"))
        api_data = data if isinstance(data, dict) else {}
    except (FetchError, ValueError) as e:
        found.notes.append(
            f"the WordPress API root did not answer usably ({e}); its name and time zone were not read"
        )
    if api_data.get("home") and absolute_http_url(str(api_data["home"]), found.url):
        found.wordpress_site = str(api_data["home"]).rstrip("/")
    return api_data


def _read_identity(found: Discovery, info: PageInfo, api_data: dict[str, Any]) -> None:
    """The site's name, description, language, logo, colour, time zone and postal address."""
    base = found.url
    found.name = _site_name(info, api_data)
    found.description = (
        str(api_data.get("description") or "") or info.meta.get("description", "")
    ).strip()
    found.language = _language(info)
    icon = api_data.get("site_icon_url") if api_data else None
    if isinstance(icon, str) and absolute_http_url(icon, base):
        found.logo, found.logo_from = absolute_http_url(icon, base), "the WordPress site icon"
    else:
        found.logo, found.logo_from = _logo(info, base)
    color = info.meta.get("theme-color", "")
    found.brand_color = color if _COLOR_RE.match(color) else None
    if api_data:
        found.timezone = _timezone(api_data)
    found.postal_address = _address_from_ld(info.json_ld) or _join_address(info.microdata_address)


def _site_name(info: PageInfo, api_data: dict[str, Any]) -> str:
    """og:site_name, else the WordPress site's name, else application-name, else <title>."""
    return (
        info.meta.get("og:site_name")
        or (str(api_data.get("name") or "") if api_data else "")
        or info.meta.get("application-name", "")
        or info.title
    ).strip()


def describe_feed_source(name: str, url: str, http: HttpClient) -> str:
    """For `distrib check`: one line on what a feed source's url turned out to be."""
    try:
        resp = http.get(
            url,
            headers={
                "Accept": "application/rss+xml, application/atom+xml, application/feed+json, */*;q=0.5"
            },
        )
    except FetchError as e:
        return f"source {name}: cannot read it now ({e})"
    if not looks_like_html(resp.body, resp.content_type):
        return f"source {name}: {url} answers a feed"
    feed, api = feed_in_page(resp.body, resp.headers, resp.url, http)
    if feed is None:
        return f"source {name}: {url} is a web page that names no feed and none was found at {', '.join(COMMON_FEED_PATHS)}"
    how = "it declares" if feed.how == "declared" else "found at a common path"
    line = f"source {name}: {url} is a web page; reading its {feed.kind} feed {feed.url} ({how})"
    if api:
        line += f'; the site offers the WordPress REST API ({api}): type = "wordpress" with url = "{wordpress_site_url(api)}" also gives authors, terms and images'
    return line


# --- the config file -------------------------------------------------------------------


def _c(text: str) -> str:
    """Text for a TOML comment: one line, no control characters."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _q(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def render_config(found: Discovery) -> str:
    """A commented distrib.toml for the site; TODO marks what a person must decide."""
    host = urlsplit(found.url).hostname or "example.org"
    site_url = found.wordpress_site or found.url
    lines = [
        f"# distrib's config for {found.name or host}, written by `distrib init {found.url}`.",
        "# What the site declares was filled in; a TODO marks what only you can decide.",
        "# `distrib check` validates it; `distrib preview --open` shows the next digest.",
        "",
        *_site_table(found, host, site_url),
        "",
        f"# {_c(found.why())}",
        "[[sources]]",
        *_source_tables(found, site_url),
        *_digest_and_email_tables(found, host),
        *_theme_table(found),
    ]
    for note in found.notes:
        lines.insert(3, f"# note: {_c(note)}")
    return "\n".join(lines) + "\n"


def _mail_domain(host: str) -> str:
    """The domain the sender's address is guessed in: the host without www., or
    example.org for an IP address or a bare host name."""
    domain = host[4:] if host.startswith("www.") else host
    if "." not in domain or domain.replace(".", "").isdigit() or ":" in domain:
        domain = "example.org"  # an address or a bare host name: no mail domain to guess
    return domain


def _site_table(found: Discovery, host: str, site_url: str) -> list[str]:
    """``[site]``: what the page declared, a TODO for what it did not."""
    lines = [
        "[site]",
        f"name = {_q(found.name or host)}"
        + ("" if found.name else "  # TODO: the page gave no name (og:site_name or <title>)"),
        f"url = {_q(site_url if site_url.endswith('/') else site_url + '/')}",
    ]
    if found.description:
        lines.append(f"description = {_q(found.description)}")
    if found.language:
        lines.append(f"language = {_q(found.language)}                   # from <html lang>")
    else:
        lines.append(
            'language = "en"  # TODO: the page declares no <html lang>; set the BCP 47 tag ("de", "uk" ...)'
        )
    if found.timezone:
        lines.append(f"timezone = {_q(found.timezone)}  # from the WordPress settings")
    else:
        lines.append(
            'timezone = "UTC"  # the site does not say; set yours ("Europe/Dublin") for dates and the cadence'
        )
    if found.postal_address:
        lines.append(
            f"postal_address = {_q(found.postal_address)}  # from the site's schema.org markup"
        )
    else:
        lines.append(
            'postal_address = ""  # TODO: required to send (CAN-SPAM): the postal address printed in every email'
        )
    if found.logo:
        lines.append(f"logo = {_q(found.logo)}  # {found.logo_from}")
    return lines


def _source_tables(found: Discovery, site_url: str) -> list[str]:
    """The chosen source's keys, then the other sources found, commented out."""
    if found.chosen == "wordpress":
        lines = [
            'name = "site"',
            'type = "wordpress"',
            f"url = {_q(found.wordpress_site or site_url)}",
        ]
        if found.feed:
            lines += [
                "",
                "# The feed, if you prefer it (only one of the two: the same posts):",
                "# [[sources]]",
                '# name = "feed"',
                '# type = "feed"',
                f"# url = {_q(found.feed.url)}",
            ]
        return lines
    feed = found.feed
    assert feed is not None
    lines = ['name = "site"', 'type = "feed"', f"url = {_q(feed.url)}  # {feed.kind}"]
    for other in found.feeds:
        if other is feed:
            continue
        label = f" ({other.title})" if other.title else ""
        lines += [
            "",
            f"# Another feed the site declares{_c(label)}:",
            "# [[sources]]",
            f"# name = {_q('other')}",
            '# type = "feed"',
            f"# url = {_q(other.url)}  # {other.kind}",
        ]
    return lines


def _digest_and_email_tables(found: Discovery, host: str) -> list[str]:
    """``[digest]``, ``[email]`` and ``[email.outbox]``: safe defaults and TODOs."""
    domain = _mail_domain(host)
    return [
        "",
        "[digest]",
        'window = "7d"             # how far back posts are taken',
        "max_posts = 10",
        'cadence = "weekly"        # per-run | per-post | daily | weekly | monthly',
        'day = "monday"',
        'time = "08:00"            # local time in site.timezone',
        "",
        "[email]",
        'mailer = "outbox"         # TODO: outbox writes .eml files; for real sending choose smtp, postmark, mailgun, ses ... ([email.smtp] etc., see the README)',
        f"from = {_q((found.name or host).replace(chr(34), '') + f' <news@{domain}>')}  # TODO: an address of your domain that may send",
        "recipients = []          # TODO: who receives the digest (or recipients_file, or `distrib subscribers import`)",
        f'unsubscribe_url = "https://{domain}/unsubscribe?token={{token}}"  # TODO: where `distrib serve` answers, behind your proxy',
        "",
        "[email.outbox]",
        'dir = "outbox"',
    ]


def _theme_table(found: Discovery) -> list[str]:
    """``[theme]`` with the page's theme colour, when it declares one."""
    if not found.brand_color:
        return []
    return [
        "",
        "[theme]",
        f'brand_color = {_q(found.brand_color)}  # from <meta name="theme-color">',
    ]
