"""Bluesky against a fake PDS on 127.0.0.1 answering like the documented XRPC methods."""

from __future__ import annotations

import json

import pytest

from distrib.channels.bluesky import make_tid
from distrib.model import DeliveryStatus, Image
from distrib.share import run_shares, share_key
from tests.channels.conftest import make_post

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
PNG = b"\x89PNG\r\n\x1a\n" + b"\1" * 100


def session(access: str = "access-1", refresh: str = "refresh-1") -> dict:
    return {
        "did": DID,
        "handle": "news.example",
        "accessJwt": access,
        "refreshJwt": refresh,
        "active": True,
    }


def created(rkey: str) -> dict:
    return {
        "uri": f"at://{DID}/app.bsky.feed.post/{rkey}",
        "cid": "bafyreib2rxk3rh6kzwq",
        "validationStatus": "valid",
    }


@pytest.fixture
def bluesky(env, httpserver, monkeypatch):
    monkeypatch.setenv("BSKY_PASSWORD", "app-pass-1234")

    def make(**extra):
        return env.channels(
            {
                "name": "sky",
                "type": "bluesky",
                "handle": "news.example",
                "password_env": "BSKY_PASSWORD",
                "service": httpserver.url_for("/").rstrip("/"),
                **extra,
            }
        )

    return make


def _requests(httpserver, nsid):
    return [r for r, _ in httpserver.log if r.path == f"/xrpc/{nsid}"]


def test_tid_format():
    tid = make_tid(1_700_000_000_000_000, 5)
    assert len(tid) == 13 and tid[0] in "234567abcdefghij"
    assert make_tid(1, 0) < make_tid(2, 0)  # sortable


def test_posts_with_facets_link_card_and_a_deterministic_record_key(env, bluesky, httpserver):
    httpserver.expect_request(
        "/xrpc/com.atproto.server.createSession", method="POST"
    ).respond_with_json(session())
    httpserver.expect_request("/img/pier.png").respond_with_data(PNG, content_type="image/png")
    blob = {
        "$type": "blob",
        "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},
        "mimeType": "image/png",
        "size": len(PNG),
    }
    httpserver.expect_request("/xrpc/com.atproto.repo.uploadBlob", method="POST").respond_with_json(
        {"blob": blob}
    )
    httpserver.expect_request(
        "/xrpc/com.atproto.repo.createRecord", method="POST"
    ).respond_with_json(created("x"))
    post = make_post(
        1,
        title="Пором через затоку 🚢",
        image=Image(httpserver.url_for("/img/pier.png"), "The pier"),
    )
    ctx, channels = bluesky()

    report = run_shares(ctx, channels, [post], dry_run=False)

    assert len(report.sent) == 1
    [login] = _requests(httpserver, "com.atproto.server.createSession")
    assert json.loads(login.data) == {"identifier": "news.example", "password": "app-pass-1234"}
    [upload] = _requests(httpserver, "com.atproto.repo.uploadBlob")
    assert upload.data == PNG and upload.headers["Content-Type"] == "image/png"
    assert upload.headers["Authorization"] == "Bearer access-1"
    [req] = _requests(httpserver, "com.atproto.repo.createRecord")
    body = json.loads(req.data)
    rkey = env.ledger.kv_get(f"bluesky:sky:rkey:{share_key(post.key, 'sky')}")
    assert (
        body["repo"] == DID and body["collection"] == "app.bsky.feed.post" and body["rkey"] == rkey
    )
    record = body["record"]
    text = record["text"]
    assert record["$type"] == "app.bsky.feed.post" and record["createdAt"].endswith("Z")
    assert text.startswith("Пором через затоку 🚢")
    raw = text.encode("utf-8")
    for facet in record["facets"]:
        [feature] = facet["features"]
        span = raw[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode("utf-8")
        if feature["$type"] == "app.bsky.richtext.facet#link":
            assert span == feature["uri"]
        else:
            assert (
                feature["$type"] == "app.bsky.richtext.facet#tag" and span == "#" + feature["tag"]
            )
    link_facets = [f for f in record["facets"] if f["features"][0]["$type"].endswith("#link")]
    assert link_facets[0]["features"][0]["uri"].startswith(post.url + "?utm_source=bluesky")
    # The link starts after the title (Cyrillic: 2 bytes a letter, the ship: 4), the tags.
    assert link_facets[0]["index"]["byteStart"] == raw.index(b"https://")
    assert record["embed"] == {
        "$type": "app.bsky.embed.external",
        "external": {
            "uri": link_facets[0]["features"][0]["uri"],
            "title": post.title,
            "description": post.summary,
            "thumb": blob,
        },
    }
    assert record["langs"] == ["en"]


def test_the_session_is_saved_and_reused_across_runs(env, bluesky, httpserver):
    httpserver.expect_request("/xrpc/com.atproto.server.createSession").respond_with_json(session())
    httpserver.expect_request("/xrpc/com.atproto.repo.createRecord").respond_with_json(created("x"))
    ctx, channels = bluesky(card=False)
    run_shares(ctx, channels, [make_post(1)], dry_run=False)
    ctx, channels = bluesky(card=False)  # the next run: a new channel object, the same ledger
    run_shares(ctx, channels, [make_post(2)], dry_run=False)
    assert len(_requests(httpserver, "com.atproto.server.createSession")) == 1
    assert len(_requests(httpserver, "com.atproto.repo.createRecord")) == 2


def test_an_expired_access_token_is_refreshed_not_logged_in_again(env, bluesky, httpserver):
    env.ledger.kv_put("bluesky:sky:session", session("old-access", "refresh-7"))
    httpserver.expect_oneshot_request("/xrpc/com.atproto.repo.createRecord").respond_with_json(
        {"error": "ExpiredToken", "message": "Token has expired"}, status=400
    )
    httpserver.expect_request("/xrpc/com.atproto.server.refreshSession").respond_with_json(
        session("new-access", "refresh-8")
    )
    httpserver.expect_request("/xrpc/com.atproto.repo.createRecord").respond_with_json(created("x"))
    ctx, channels = bluesky(card=False)
    report = run_shares(ctx, channels, [make_post(1)], dry_run=False)
    assert len(report.sent) == 1
    [refresh] = _requests(httpserver, "com.atproto.server.refreshSession")
    assert refresh.headers["Authorization"] == "Bearer refresh-7"
    assert _requests(httpserver, "com.atproto.server.createSession") == []
    assert (
        _requests(httpserver, "com.atproto.repo.createRecord")[-1].headers["Authorization"]
        == "Bearer new-access"
    )
    assert env.ledger.kv_get("bluesky:sky:session")["accessJwt"] == "new-access"


def test_killed_between_call_and_mark_finds_the_record_and_posts_nothing(env, bluesky, httpserver):
    env.ledger.kv_put("bluesky:sky:session", session())
    post = make_post(1)
    ctx, [channel] = bluesky(card=False)
    key = share_key(post.key, "sky")
    rkey = channel.record_key(key)  # fixed before the dead run's call
    text = channel.compose(post).text
    env.ledger.claim_share(post.key, "sky", text)
    # The record at the key is this post (its text): issue 10 wants that checked.
    httpserver.expect_request(
        "/xrpc/com.atproto.repo.getRecord",
        query_string={"repo": DID, "collection": "app.bsky.feed.post", "rkey": rkey},
    ).respond_with_json(
        {"uri": f"at://{DID}/app.bsky.feed.post/{rkey}", "cid": "bafy", "value": {"text": text}}
    )
    report = run_shares(ctx, [channel], [post], dry_run=False)
    assert [i.remote_id for i in report.sent] == [f"at://{DID}/app.bsky.feed.post/{rkey}"]
    assert _requests(httpserver, "com.atproto.repo.createRecord") == []


def test_a_retry_reuses_the_record_key_and_an_existing_record_counts_as_sent(
    env, bluesky, httpserver
):
    env.ledger.kv_put("bluesky:sky:session", session())
    post = make_post(1)
    ctx, [channel] = bluesky(card=False)
    rkey = channel.record_key(share_key(post.key, "sky"))
    text = channel.compose(post).text
    env.ledger.claim_share(post.key, "sky", text)
    # The reconcile does not find it yet (the dead run's write was still landing) ...
    httpserver.expect_oneshot_request("/xrpc/com.atproto.repo.getRecord").respond_with_json(
        {"error": "RecordNotFound", "message": "Could not locate record"}, status=400
    )
    # ... then the create with the same record key says it exists, and the read-back finds it.
    httpserver.expect_request("/xrpc/com.atproto.repo.createRecord").respond_with_json(
        {"error": "InvalidRequest", "message": "Record already exists"}, status=400
    )
    uri = f"at://{DID}/app.bsky.feed.post/{rkey}"
    httpserver.expect_request("/xrpc/com.atproto.repo.getRecord").respond_with_json(
        {"uri": uri, "cid": "bafy", "value": {"text": text}}
    )
    report = run_shares(ctx, [channel], [post], dry_run=False)
    [create] = _requests(httpserver, "com.atproto.repo.createRecord")
    assert json.loads(create.data)["rkey"] == rkey
    assert [i.remote_id for i in report.sent] == [uri]
    assert env.ledger.share_row(post.key, "sky").status == DeliveryStatus.SENT


def test_too_long_for_bluesky_uses_a_shorter_variant(env, bluesky):
    ctx, [channel] = bluesky()
    post = make_post(1, summary="довге речення " * 100)
    snippet = channel.compose(post)
    graphemes = len(snippet.text)
    assert snippet.length <= 300 and graphemes <= 300 and len(snippet.text.encode()) <= 3000
    assert snippet.facets and snippet.to_json()["facets"][0]["type"] in ("tag", "link")


def test_a_thumbnail_over_a_megabyte_is_shrunk_below_the_blob_limit(env, bluesky, httpserver):
    PIL = pytest.importorskip(
        "PIL", reason="shrinking thumbnails needs Pillow: pip install 'distrib[card]'"
    )
    import io
    import os

    from PIL import Image as PILImage

    noise = PILImage.frombytes("RGB", (900, 900), os.urandom(900 * 900 * 3))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    big = buf.getvalue()
    assert len(big) > 1_000_000 and PIL
    env.ledger.kv_put("bluesky:sky:session", session())
    httpserver.expect_request("/img/big.png").respond_with_data(big, content_type="image/png")
    httpserver.expect_request("/xrpc/com.atproto.repo.uploadBlob").respond_with_json(
        {
            "blob": {
                "$type": "blob",
                "ref": {"$link": "bafkrei"},
                "mimeType": "image/jpeg",
                "size": 1,
            }
        }
    )
    httpserver.expect_request("/xrpc/com.atproto.repo.createRecord").respond_with_json(created("x"))
    ctx, channels = bluesky()
    post = make_post(1, image=Image(httpserver.url_for("/img/big.png"), "noise"))
    run_shares(ctx, channels, [post], dry_run=False)
    [upload] = _requests(httpserver, "com.atproto.repo.uploadBlob")
    assert len(upload.data) <= 1_000_000 and upload.headers["Content-Type"] == "image/jpeg"


# --- record keys (issue 10): a fake PDS that keeps its records and answers like the
# reference one (a createRecord on a taken key is a generic 500, "There is already a value
# at key" in its log; a missing record is 400 RecordNotFound).


class FakePDS:
    def __init__(self, httpserver, *, taken_status: int = 500):
        self.records: dict[str, dict] = {}
        self.creates = 0
        self.taken_status = taken_status
        #: answers to give instead of the normal ones, in order ("write-then-500": commit, then fail).
        self.script: list[str] = []
        httpserver.expect_request("/xrpc/com.atproto.server.createSession").respond_with_json(
            session()
        )
        httpserver.expect_request(
            "/xrpc/com.atproto.repo.createRecord", method="POST"
        ).respond_with_handler(self.create)
        httpserver.expect_request("/xrpc/com.atproto.repo.getRecord").respond_with_handler(self.get)

    def _json(self, body, status=200):
        from werkzeug import Response

        return Response(json.dumps(body), status=status, content_type="application/json")

    def create(self, request):
        self.creates += 1
        body = json.loads(request.data)
        rkey = body["rkey"]
        step = self.script.pop(0) if self.script else ""
        if step == "500":
            return self._json(
                {"error": "InternalServerError", "message": "Internal Server Error"}, 500
            )
        if rkey in self.records:
            if self.taken_status == 500:
                return self._json(
                    {"error": "InternalServerError", "message": "Internal Server Error"}, 500
                )
            return self._json({"error": "InvalidRequest", "message": "Record already exists"}, 400)
        self.records[rkey] = body["record"]
        if step == "write-then-500":
            return self._json(
                {"error": "InternalServerError", "message": "Internal Server Error"}, 500
            )
        return self._json(created(rkey))

    def get(self, request):
        if self.script and self.script[0] == "get-503":
            self.script.pop(0)
            return self._json({"error": "InternalServerError", "message": "Upstream Failure"}, 503)
        rkey = request.args["rkey"]
        if rkey not in self.records:
            return self._json(
                {
                    "error": "RecordNotFound",
                    "message": f"Could not locate record: at://{DID}/app.bsky.feed.post/{rkey}",
                },
                400,
            )
        return self._json(
            {
                "uri": f"at://{DID}/app.bsky.feed.post/{rkey}",
                "cid": "bafyrei",
                "value": self.records[rkey],
            }
        )

    def texts(self) -> list[str]:
        return [r["text"] for r in self.records.values()]


def test_fifty_posts_of_one_run_get_fifty_record_keys_and_are_each_published_once(
    env, bluesky, httpserver
):
    """Old keys: one timestamp per run + a 10-bit hash, so 50 posts of one run clash (the
    reference PDS answers 500 and the post was deferred for ever)."""
    pds = FakePDS(httpserver)
    posts = [make_post(n) for n in range(1, 51)]
    ctx, channels = bluesky(card=False, max_per_run=50)
    report = run_shares(ctx, channels, posts, dry_run=False)
    assert len(report.sent) == 50 and report.deferred == [] and report.failed == []
    assert len(pds.records) == 50 and pds.creates == 50
    assert sorted(pds.texts()) == sorted(i.text for i in report.sent)
    assert len({i.remote_id for i in report.sent}) == 50


@pytest.mark.parametrize("taken_status", [500, 400])
def test_a_key_holding_another_post_is_not_taken_for_this_one(
    env, bluesky, httpserver, taken_status
):
    """The record at the key is someone else's post: never "sent with the first post's
    URI"; the share takes the next key and is published."""
    pds = FakePDS(httpserver, taken_status=taken_status)
    post = make_post(1)
    ctx, [channel] = bluesky(card=False)
    rkey = channel.record_key(share_key(post.key, "sky"))
    pds.records[rkey] = {
        "$type": "app.bsky.feed.post",
        "text": "An older post https://news.example/posts/0",
        "createdAt": "2026-11-20T09:00:00.000Z",
    }
    report = run_shares(ctx, [channel], [post], dry_run=False)
    [sent] = report.sent
    assert sent.remote_id != f"at://{DID}/app.bsky.feed.post/{rkey}"
    assert len(pds.records) == 2 and sent.text in pds.texts()
    assert pds.records[rkey]["text"] == "An older post https://news.example/posts/0"


def test_a_5xx_after_the_write_is_settled_by_reading_the_key_back(env, bluesky, httpserver):
    pds = FakePDS(httpserver)
    pds.script = ["write-then-500"]
    post = make_post(1)
    ctx, channels = bluesky(card=False)
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert len(report.sent) == 1 and len(pds.records) == 1 and pds.creates == 1


def test_a_deferred_share_is_reconciled_by_key_on_the_next_run_and_keeps_its_text(
    env, bluesky, httpserver, clock
):
    """A 5xx that did commit, and the read-back failing too: deferred.  The next run
    finds the record is ours and marks it sent: no second post, even if the post was
    edited meanwhile."""
    from datetime import timedelta

    pds = FakePDS(httpserver)
    pds.script = ["write-then-500", "get-503", "get-503", "get-503"]
    post = make_post(1)
    ctx, channels = bluesky(card=False)
    report = run_shares(ctx, channels, [post], dry_run=False)
    assert len(report.deferred) == 1 and len(pds.records) == 1
    assert "15 minutes" in report.deferred[0].error
    first_text = env.ledger.share_row(post.key, "sky").text

    clock[0] += timedelta(minutes=20)
    edited = make_post(1, title="Harbour council votes on the new ferry line (updated)")
    ctx, channels = bluesky(card=False)
    ctx.now = clock[0]
    report = run_shares(ctx, channels, [edited], dry_run=False)
    assert [i.text for i in report.sent] == [first_text]
    assert len(pds.records) == 1 and pds.creates == 1
    assert env.ledger.share_row(post.key, "sky").status == DeliveryStatus.SENT


def test_a_refused_app_password_stops_the_channel(env, bluesky, httpserver):
    httpserver.expect_request("/xrpc/com.atproto.server.createSession").respond_with_json(
        {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}, status=401
    )
    ctx, channels = bluesky(card=False)
    report = run_shares(ctx, channels, [make_post(1), make_post(2)], dry_run=False)
    assert report.failed == [] and len(report.deferred) == 1 and len(report.skipped) == 1
    assert "BSKY_PASSWORD" in report.errors[0]
    assert len(_requests(httpserver, "com.atproto.server.createSession")) == 1


def test_a_refused_login_while_settling_a_dead_runs_share_stops_the_channel_once(
    env, bluesky, httpserver
):
    httpserver.expect_request("/xrpc/com.atproto.server.createSession").respond_with_json(
        {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}, status=401
    )
    post = make_post(1)
    ctx, channels = bluesky(card=False)
    env.ledger.claim_share(post.key, "sky", channels[0].compose(post).text)  # a dead run's claim
    report = run_shares(ctx, channels, [post, make_post(2)], dry_run=False)
    assert report.failed == [] and len(report.deferred) == 1 and len(report.skipped) == 1
    assert (
        len(_requests(httpserver, "com.atproto.server.createSession")) == 1
    )  # not once per attempt
    assert _requests(httpserver, "com.atproto.repo.createRecord") == []
    assert env.ledger.share_row(post.key, "sky").status == DeliveryStatus.DEFERRED


def test_another_post_whose_link_starts_like_ours_is_not_taken_for_ours(env, bluesky, httpserver):
    """Without UTM, post 1's link is a prefix of post 10's: the record of post 10 at our
    key is someone else's."""
    pds = FakePDS(httpserver)
    post = make_post(1)
    ctx, [channel] = bluesky(card=False, utm=False)
    rkey = channel.record_key(share_key(post.key, "sky"))
    pds.records[rkey] = {
        "$type": "app.bsky.feed.post",
        "text": "Part 10 https://news.example/posts/10",
        "createdAt": "2026-11-20T09:00:00.000Z",
    }
    report = run_shares(ctx, [channel], [post], dry_run=False)
    assert len(report.sent) == 1 and len(pds.records) == 2


def test_mentions_are_resolved_to_dids_and_an_unknown_handle_stays_text(env, bluesky, httpserver):
    """@handle facets as @atproto/api's detectFacets makes them: the handle resolved with
    com.atproto.identity.resolveHandle on the configured PDS; one that does not resolve
    (the PDS answers 400 InvalidRequest "Unable to resolve handle") gets no facet."""
    httpserver.expect_request(
        "/xrpc/com.atproto.server.createSession", method="POST"
    ).respond_with_json(session())
    httpserver.expect_request(
        "/xrpc/com.atproto.identity.resolveHandle", query_string={"handle": "news.harbourlight.org"}
    ).respond_with_json({"did": "did:plc:harbourlight7xq"})
    httpserver.expect_request(
        "/xrpc/com.atproto.identity.resolveHandle", query_string={"handle": "gone.example.com"}
    ).respond_with_json(
        {"error": "InvalidRequest", "message": "Unable to resolve handle"}, status=400
    )
    httpserver.expect_request(
        "/xrpc/com.atproto.repo.createRecord", method="POST"
    ).respond_with_json(created("x"))
    post = make_post(1, title="Thanks @news.harbourlight.org and @gone.example.com", tags=())
    ctx, channels = bluesky(card=False)

    report = run_shares(ctx, channels, [post], dry_run=False)

    assert len(report.sent) == 1
    [req] = _requests(httpserver, "com.atproto.repo.createRecord")
    record = json.loads(req.data)["record"]
    raw = record["text"].encode("utf-8")
    mentions = [
        f
        for f in record["facets"]
        if f["features"][0]["$type"] == "app.bsky.richtext.facet#mention"
    ]
    assert [f["features"][0]["did"] for f in mentions] == ["did:plc:harbourlight7xq"]
    [m] = mentions
    assert raw[m["index"]["byteStart"] : m["index"]["byteEnd"]] == b"@news.harbourlight.org"
    assert len(_requests(httpserver, "com.atproto.identity.resolveHandle")) == 2
