"""The WordPress source: posts from the REST API (https://developer.wordpress.org/rest-api/).

``GET {url}/wp-json/wp/v2/posts?_embed&per_page=N&page=P&after=<window start>`` pages
through the posts of the selection window, newest first.  ``_embed`` brings the
author, the featured image (with alt text and sizes) and the ``wp:term`` lists
(categories and tags, told apart by their taxonomy) in the same answer.  A site
without pretty permalinks answers on ``?rest_route=/wp/v2/posts`` instead; we try
that when ``/wp-json/`` is 404.

The window: the app sets ``source.since`` (an aware datetime) before ``fetch`` to the
start of the widest newsletter window; without it, the last 30 days.

Auth: WordPress application passwords
(https://make.wordpress.org/core/2020/11/05/application-passwords-integration-guide/)
over HTTP Basic; ``username`` plus ``password_env`` naming the variable that holds it.
It is for sites whose REST API refuses anonymous readers; only published posts are
read either way (drafts and private posts are never emailed).

Rules from WordPress's own REST API handbook ("Posts" reference): a post whose
``content.protected`` is true has a password; it is skipped unless
``include_protected = true``, and then only its title and link are used (its text is
for those who know the password).  ``post_type`` reads a custom post type at the REST
base the site gives for it in ``/wp/v2/types`` ("Post Types" reference).  Stopping at
``max_pages`` while more pages exist is said in one log line with what is left.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from ..adapters import Context, Source
from ..errors import ConfigError, SourceError
from ..http import FetchError, HttpResponse
from ..model import Image, Post
from ..sanitize import absolute_http_url, clean_html, html_to_text, one_line
from ..schema import Opt, Section, k_bool, k_env_name, k_positive, k_str, k_url
from .common import content_images, derive_summary, derive_title, post_key
from .dates import parse_date

log = logging.getLogger("distrib.sources")

DEFAULT_WINDOW = timedelta(days=30)
#: Image sizes WordPress generates, best first for a ~600 px wide email column.
PREFERRED_SIZES = ("large", "medium_large", "full", "medium")


class WordPressSource(Source):
    """Posts of a WordPress site through its REST API."""

    options: ClassVar[dict[str, Opt]] = {
        "url": Opt(
            k_url,
            None,
            "the WordPress site's address, such as 'https://blog.example.org'",
            required=True,
        ),
        "username": Opt(
            k_str,
            None,
            "a user for application-password auth, for a site whose REST API needs a login "
            "(only published posts are read: drafts and private posts are never emailed)",
        ),
        "password_env": Opt(
            k_env_name, None, "environment variable holding that user's application password"
        ),
        "per_page": Opt(k_positive, 20, "posts per API page (WordPress allows at most 100)"),
        "max_pages": Opt(k_positive, 5, "the most API pages read in one fetch"),
        "post_type": Opt(
            k_str,
            "post",
            "the post type to read, such as 'podcast' (its REST base comes from /wp/v2/types)",
        ),
        "include_protected": Opt(
            k_bool,
            False,
            "take password-protected posts too (their title and link only, never their text)",
        ),
    }

    def __init__(self, name: str, options: Section, ctx: Context):
        super().__init__(name, options, ctx)
        if bool(self.opts.get("username")) != bool(self.opts.get("password_env")):
            where = self.opts.where or f"sources ({name})"
            raise ConfigError(f"{where}: set both username and password_env, or neither")
        if (self.opts.get("per_page") or 20) > 100:
            where = self.opts.where or f"sources ({name})"
            raise ConfigError(f"{where}.per_page: expected at most 100 (the WordPress API's limit)")

    def _auth(self) -> tuple[str, str] | None:
        if not self.opts.get("username"):
            return None
        password = self.ctx.settings.secret(self.opts, "password_env")
        return (self.opts["username"], password) if password else None

    def _rest_base(self, auth: tuple[str, str] | None) -> str:
        """The REST base of ``post_type``: "posts" for posts, else what /wp/v2/types says."""
        post_type = (self.opts.get("post_type") or "post").strip()
        if post_type == "post":
            return "posts"
        root = self.opts["url"].rstrip("/")
        last: FetchError | None = None
        for url in (
            f"{root}/wp-json/wp/v2/types",
            f"{root}/?{urlencode({'rest_route': '/wp/v2/types'})}",
        ):
            try:
                resp = self.ctx.http.get(
                    url, auth=auth, conditional=False, headers={"Accept": "application/json"}
                )
            except FetchError as e:
                last = e
                if e.status == 404 and not _api_error(e.body):
                    continue  # no pretty permalinks: try ?rest_route=
                raise self._error(e) from None
            try:
                types = json.loads(resp.body.decode("utf-8-sig", errors="replace"))
            except ValueError:
                types = None
            if not isinstance(types, dict):
                raise SourceError(
                    self.name,
                    f"the WordPress API at {_redacted(resp.url)} did not list its post types; check the url",
                )
            info = types.get(post_type)
            if not isinstance(info, dict) or not info.get("rest_base"):
                known = ", ".join(
                    sorted(
                        k for k, v in types.items() if isinstance(v, dict) and v.get("rest_base")
                    )
                )
                raise ConfigError(
                    f"{self._where}.post_type: the site has no post type {post_type!r} in its REST API; it has {known or 'none'}"
                )
            return str(info["rest_base"])
        assert last is not None
        raise self._error(last) from None

    @property
    def _where(self) -> str:
        return self.opts.where or f"sources ({self.name})"

    def _endpoint(self, page: int, pretty: bool) -> str:
        since = self.since or (self.ctx.now - DEFAULT_WINDOW)
        params = {
            "_embed": "1",
            "per_page": str(self.opts.get("per_page") or 20),
            "page": str(page),
            "orderby": "date",
            "order": "desc",
            "after": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        }
        root = self.opts["url"].rstrip("/")
        base = self._base
        if pretty:
            return f"{root}/wp-json/wp/v2/{base}?{urlencode(params)}"
        return f"{root}/?{urlencode({'rest_route': f'/wp/v2/{base}', **params})}"

    _base = "posts"
    #: password-protected posts skipped in this fetch
    _protected = 0

    def fetch(self) -> list[Post]:
        auth = self._auth()
        self._base = self._rest_base(auth)
        max_pages = self.opts.get("max_pages") or 5
        posts: list[Post] = []
        self._protected = 0
        pretty = True
        page = 1
        while page <= max_pages:
            url = self._endpoint(page, pretty)
            try:
                # The API answer depends on the query (the window moves), so a 304 is
                # unlikely; conditional GET would only fill the ledger.
                resp = self.ctx.http.get(
                    url, auth=auth, conditional=False, headers={"Accept": "application/json"}
                )
            except FetchError as e:
                if e.status == 404 and pretty and page == 1 and not _api_error(e.body):
                    pretty = False  # no pretty permalinks: ?rest_route= works everywhere
                    continue
                if (
                    e.status == 400
                    and page > 1
                    and (_api_error(e.body) or {}).get("code") == "rest_post_invalid_page_number"
                ):
                    break  # asked one page past the end
                raise self._error(e) from None
            items = self._items(resp)
            posts.extend(p for p in (self._post(item) for item in items) if p is not None)
            if self._last_page(page, len(items), resp):
                break
            page += 1
            if page > max_pages:
                self._say_left(max_pages, resp)
        self._say_protected()
        return posts

    def _last_page(self, page: int, n_items: int, resp: HttpResponse) -> bool:
        """Whether ``page`` was the last: a short page, or the count the API gave."""
        total_pages = resp.headers.get("x-wp-totalpages", "")
        if n_items < (self.opts.get("per_page") or 20):
            return True
        return total_pages.isdigit() and page >= int(total_pages)

    def _say_protected(self) -> None:
        if self._protected:
            log.warning(
                "source %r: skipped %d password-protected post%s; set include_protected = true "
                "to take their title and link",
                self.name, self._protected, "" if self._protected == 1 else "s",
            )  # fmt: skip

    def _say_left(self, max_pages: int, resp: HttpResponse) -> None:
        """Stopping at max_pages while the site has more: one line with what is left."""
        total_pages = resp.headers.get("x-wp-totalpages", "")
        total = resp.headers.get("x-wp-total", "")
        if total_pages.isdigit():
            left_pages = int(total_pages) - max_pages
            if left_pages <= 0:
                return
            per_page = self.opts.get("per_page") or 20
            left = f"{left_pages} more page{'s' if left_pages != 1 else ''}"
            if total.isdigit():
                n = max(int(total) - max_pages * per_page, 0)
                left += f", {n} more post{'s' if n != 1 else ''}"
        else:
            log.warning(
                "source %r: stopped at max_pages = %d; the API did not say how many pages are left; "
                "raise max_pages to read more", self.name, max_pages,
            )  # fmt: skip
            return
        log.warning(
            "source %r: stopped at max_pages = %d with %s left in the window; raise max_pages to read them",
            self.name, max_pages, left,
        )  # fmt: skip

    def _error(self, e: FetchError) -> SourceError:
        api = _api_error(e.body)
        if api:
            hint = e.hint
            if api.get("code") in (
                "rest_not_logged_in",
                "incorrect_password",
                "invalid_username",
                "rest_forbidden",
            ):
                hint = "check username and the application password in password_env"
            message = one_line(str(api.get("message") or ""))[:200]
            return SourceError(
                self.name,
                f"the WordPress API at {e.url} answered {api.get('code')}: {message}; {hint}",
            )
        return SourceError(self.name, str(e))

    def _items(self, resp: HttpResponse) -> list[dict[str, Any]]:
        try:
            data = json.loads(resp.body.decode("utf-8-sig", errors="replace"))
        except RecursionError:
            raise SourceError(
                self.name,
                f"the WordPress API at {_redacted(resp.url)} answered JSON nested too deeply to "
                "read; check the url (a WordPress site with the REST API on)",
            ) from None
        except ValueError:
            got = resp.content_type or "no content type"
            raise SourceError(
                self.name,
                f"the WordPress API at {_redacted(resp.url)} answered {got}, not JSON; "
                "check the url (a WordPress site with the REST API on)",
            ) from None
        if isinstance(data, dict):
            if "code" in data and "message" in data and "id" not in data:
                message = one_line(str(data.get("message")))[:200]
                raise SourceError(
                    self.name,
                    f"the WordPress API at {_redacted(resp.url)} answered {data['code']}: {message}; check the url",
                )
            if "id" in data and "link" in data:
                return [data]  # a single post object (a URL naming one post)
            data = None  # JSON, but not WordPress's: say so rather than find no posts
        if not isinstance(data, list):
            raise SourceError(
                self.name,
                f"the WordPress API at {_redacted(resp.url)} answered JSON that is not a list of posts; check the url",
            )
        return [d for d in data if isinstance(d, dict)]

    def _post(self, item: dict[str, Any]) -> Post | None:
        if item.get("status") not in (None, "publish"):
            return None
        link = absolute_http_url(_s(item.get("link")), self.opts["url"])
        if not link:
            return None
        protected = (
            isinstance(item.get("content"), dict) and item["content"].get("protected") is True
        )
        if protected and not self.opts.get("include_protected"):
            self._protected += 1
            return None
        if protected:
            # A password-protected post: its title and its link, nothing of its text.
            title = one_line(_rendered(item.get("title")))
            published = _gmt(item.get("date_gmt")) or parse_date(_s(item.get("date")))
            return Post(
                key=post_key(_rendered(item.get("guid")), link), url=link, title=title or link,
                source=self.name, published=published,
            )  # fmt: skip
        content = clean_html(_rendered(item.get("content")), link)
        summary = derive_summary(_rendered(item.get("excerpt")), content)
        title = one_line(_rendered(item.get("title"))) or derive_title(
            html_to_text(content) or summary
        )
        embedded: dict[str, Any] = (
            item["_embedded"] if isinstance(item.get("_embedded"), dict) else {}
        )
        tags, categories = _terms(embedded)
        published = _gmt(item.get("date_gmt")) or parse_date(_s(item.get("date")))
        updated = _gmt(item.get("modified_gmt"))
        return Post(
            key=post_key(_rendered(item.get("guid")), link),
            url=link,
            title=title,
            source=self.name,
            summary=summary,
            content=content,
            author=_author(embedded),
            published=published,
            updated=updated if updated != published else None,
            tags=tags,
            categories=categories,
            image=_featured(item, embedded, link) or _first_image(content),
        )


def _first_image(content: str) -> Image | None:
    """No featured image: the first picture of the post, as the other sources do."""
    images = content_images(content)
    return images[0] if images else None


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _rendered(field: Any) -> str:
    """``{"rendered": "..."}`` as WordPress writes most text fields (or a bare string)."""
    if isinstance(field, dict):
        return _s(field.get("rendered"))
    return _s(field)


def _gmt(value: Any) -> datetime | None:
    """``date_gmt`` has no zone designator; it is UTC by definition."""
    text = _s(value)
    if not text or text.startswith("0000"):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return parse_date(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _is_error(obj: Any) -> bool:
    # An embedded object the user may not see comes back as {"code": ..., "message": ...}.
    return not isinstance(obj, dict) or ("code" in obj and "message" in obj)


def _author(embedded: dict[str, Any]) -> str:
    names = [one_line(_s(a.get("name"))) for a in embedded.get("author") or [] if not _is_error(a)]
    return ", ".join(n for n in names if n)


def _terms(embedded: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tags: list[str] = []
    categories: list[str] = []
    for group in embedded.get("wp:term") or []:
        for term in group if isinstance(group, list) else []:
            if _is_error(term):
                continue
            name = one_line(_s(term.get("name")))
            if not name:
                continue
            taxonomy = term.get("taxonomy")
            if taxonomy == "post_tag":
                tags.append(name)
            elif taxonomy == "category":
                categories.append(name)
    return tuple(dict.fromkeys(tags)), tuple(dict.fromkeys(categories))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _featured(item: dict[str, Any], embedded: dict[str, Any], link: str) -> Image | None:
    for media in embedded.get("wp:featuredmedia") or []:
        if _is_error(media):
            continue
        alt = one_line(_s(media.get("alt_text"))) or one_line(_rendered(media.get("title")))
        details: dict[str, Any] = (
            media["media_details"] if isinstance(media.get("media_details"), dict) else {}
        )
        sizes: dict[str, Any] = details["sizes"] if isinstance(details.get("sizes"), dict) else {}
        for size in PREFERRED_SIZES:
            s = sizes.get(size)
            if isinstance(s, dict):
                url = absolute_http_url(_s(s.get("source_url")), link)
                if url:
                    return Image(url, alt, _int(s.get("width")), _int(s.get("height")))
        url = absolute_http_url(_s(media.get("source_url")), link)
        if url:
            return Image(url, alt, _int(details.get("width")), _int(details.get("height")))
    # The old shapes: WP API v1 / Jetpack's "featured_image" and "jetpack_featured_media_url".
    old = item.get("featured_image")
    if isinstance(old, str):
        url = absolute_http_url(old, link)
        if url:
            return Image(url)
    elif isinstance(old, dict):
        url = absolute_http_url(
            _s(old.get("source") or old.get("source_url") or old.get("guid")), link
        )
        meta: dict[str, Any] = (
            old["attachment_meta"] if isinstance(old.get("attachment_meta"), dict) else {}
        )
        if url:
            return Image(
                url,
                one_line(_s(old.get("alt_text") or old.get("title"))),
                _int(meta.get("width")),
                _int(meta.get("height")),
            )
    url = absolute_http_url(_s(item.get("jetpack_featured_media_url")), link)
    return Image(url) if url else None


def _api_error(body: bytes) -> dict[str, Any] | None:
    """The REST API's error object (``{"code": ..., "message": ..., "data": {...}}``), if that is the body."""
    if not body:
        return None
    try:
        data = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and "code" in data and "message" in data:
        return data
    return None


def _redacted(url: str) -> str:
    from ..http import redact_url

    return redact_url(url)
