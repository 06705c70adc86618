"""listmonk: hand the edition off as a listmonk campaign, for subscribers kept there.

API: https://listmonk.app/docs/apis/campaigns/
(``POST /api/campaigns`` creates it, ``PUT /api/campaigns/{id}/status`` with
``{"status": "running"}`` starts it; ``GET /api/campaigns?query=…`` finds it again).
Auth: https://listmonk.app/docs/apis/apis/ — an API user's ``Authorization: token
user:token`` (listmonk v4+), or HTTP basic auth with a password (older versions).

One delivery per edition (the pseudo-recipient ``handoff:listmonk``): the campaign is
named ``<name_prefix>-<edition id>``, so a run that died after creating it finds it
instead of creating a second one.  listmonk's ``query`` is a substring search
(``distrib-42`` also finds ``distrib-420``) and it gives at most 50 campaigns a page,
so every page is read and the name must match exactly.  Our per-recipient placeholders become listmonk's
own template tags, so listmonk fills in each subscriber's address and unsubscribe
link (it also adds its own List-Unsubscribe header).  listmonk wraps a campaign body
in a template: point ``template_id`` at one whose body is only
``{{ template "content" . }}`` so that our finished HTML is sent as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

import httpx

from ..errors import ConfigError
from ..model import Markers
from ..schema import (
    Ctx,
    Invalid,
    Opt,
    k_bool,
    k_email,
    k_env_name,
    k_positive,
    k_str,
    k_str_list,
    k_url,
)
from ._http import HandoffMailer, Transient, edition_marker

#: listmonk caps ``per_page`` at 50 (a larger value is cut down to it).
PER_PAGE = 50
#: A guard against an API that never ends its pages (10,000 campaigns).
MAX_PAGES = 200

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

NAME = "listmonk"
#: listmonk's Go template tags for the values we fill in per recipient: (unsubscribe url,
#: email, preferences url).  listmonk's own page under UnsubscribeURL manages preferences
#: with ``?manage=true``.
TAGS = ("{{ UnsubscribeURL }}", "{{ .Subscriber.Email }}", "{{ UnsubscribeURL }}?manage=true")


def go_template_literal(text: str) -> str:
    """``text`` as a Go template that outputs it unchanged: a "{{" in a post's title or
    text (``{{ .Subscriber.Email }}``) must not become a tag that listmonk fills."""
    return text.replace("{{", '{{"{{"}}')


def k_id_list(v: Any, ctx: Ctx) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if (
        not isinstance(v, list)
        or not v
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    ):
        raise Invalid("a list id or an array of list ids, such as [3]")
    return tuple(v)


def k_id(v: Any, ctx: Ctx) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise Invalid("a template id (an integer of 1 or more)")
    return v


def fill_tags(
    text: str, markers: Markers, tags: tuple[str, str, str], literal: Callable[[str], str] = str
) -> str:
    """The edition's markers in ``text`` as the platform's tags ``(unsubscribe url, email,
    preferences url)``; the rest made ``literal`` for the platform's template language."""
    by_marker = dict(zip((markers.url, markers.email, markers.prefs), tags, strict=True))
    pieces = markers.split(text)
    for i, piece in enumerate(pieces):
        if i % 2:
            pieces[i] = by_marker[piece]
        else:
            pieces[i] = literal(piece)
    return "".join(pieces)


class ListmonkMailer(HandoffMailer):
    """Creates and starts one listmonk campaign per edition."""

    name = NAME
    options: ClassVar[dict[str, Opt]] = {
        "url": Opt(
            k_url, None, "listmonk's base URL, such as 'https://lists.example.org'", required=True
        ),
        "username": Opt(
            k_str, None, "the listmonk API user (Admin → Users → API user)", required=True
        ),
        "token_env": Opt(
            k_env_name, None, "environment variable holding the API user's token (listmonk v4+)"
        ),
        "password_env": Opt(
            k_env_name,
            None,
            "environment variable holding the password (basic auth, older listmonk)",
        ),
        "lists": Opt(
            k_id_list, None, "the ids of the listmonk lists to send to, such as [3]", required=True
        ),
        "from_email": Opt(k_email, None, "the campaign's From (default: [email] from)"),
        "template_id": Opt(
            k_id, None, "the listmonk template to wrap our HTML in (default: listmonk's default)"
        ),
        "start": Opt(
            k_bool, True, "start sending at once; false: leave a draft to start in listmonk"
        ),
        "name_prefix": Opt(k_str, "distrib", "campaign names are '<name_prefix>-<edition id>'"),
        "tags": Opt(k_str_list, ("distrib",), "listmonk tags for the campaign"),
        "timeout": Opt(k_positive, 60, "seconds to wait for one API request"),
    }

    def open_client(self) -> httpx.Client:
        settings = self.ctx.settings
        user = self.opts["username"]
        token = settings.secret(self.opts, "token_env", where="email.listmonk")
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if token:
            headers["Authorization"] = f"token {user}:{token}"
        else:
            password = settings.secret(self.opts, "password_env", where="email.listmonk")
            if not password:
                raise ConfigError(
                    "email.listmonk: neither token_env nor password_env is set; "
                    "set token_env to the variable holding the API user's token"
                )
            auth = (user, password)
        return self.http_client(self.opts["url"].rstrip("/"), headers=headers, auth=auth)

    def describe(self) -> str:
        return f"handed off to listmonk at {self.opts.get('url')}"

    # ---------------------------------------------------------------------------------

    def campaign(self, message: PreparedMessage) -> dict[str, Any]:
        """The ``POST /api/campaigns`` body for this edition."""
        body: dict[str, Any] = {
            "name": edition_marker(self.opts.get("name_prefix") or "distrib", message.edition_id),
            "subject": message.subject,
            "lists": list(self.opts["lists"]),
            "from_email": self.opts.get("from_email") or self.ctx.settings.email["from"],
            "type": "regular",
            "content_type": "html",
            "messenger": "email",
            "body": fill_tags(message.html, message.markers, TAGS, go_template_literal),
            "altbody": fill_tags(message.text, message.markers, TAGS, go_template_literal),
            "tags": list(self.opts.get("tags") or ()),
        }
        if self.opts.get("template_id"):
            body["template_id"] = self.opts["template_id"]
        return body

    def find(self, name: str) -> dict[str, Any] | None:
        """The campaign called exactly ``name``, if one exists.  listmonk's ``query``
        matches substrings of names and subjects, so every page of its answer is read
        and only the exact name counts."""
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            r = self.api(
                "GET",
                "/api/campaigns",
                params={"query": name, "per_page": PER_PAGE, "page": page},
                permission="campaigns:get_all",
            )
            data = r.json().get("data") or {}
            results = data.get("results") or []
            for c in results:
                if c.get("name") == name:
                    return cast("dict[str, Any]", c)
            seen += len(results)
            total = data.get("total")
            if not results or (isinstance(total, int) and seen >= total):
                return None
        raise Transient(f"{NAME}: more than {MAX_PAGES} pages of campaigns match {name!r}")

    def hand_off(self, message: PreparedMessage) -> str:
        body = self.campaign(message)
        existing = self.find(body["name"])
        if existing is None:
            r = self.api("POST", "/api/campaigns", json=body, permission="campaigns:manage")
            data = r.json().get("data") or {}
            if "id" not in data:
                raise Transient(f"{NAME}: the campaign was created without an id in the answer")
            campaign_id, status = data["id"], data.get("status", "draft")
        else:
            campaign_id, status = existing["id"], existing.get("status", "draft")
        if self.opts.get("start", True) and status == "draft":
            self.api(
                "PUT",
                f"/api/campaigns/{campaign_id}/status",
                json={"status": "running"},
                permission="campaigns:send",
            )
        return str(campaign_id)
