"""Posts as last seen, and the HTTP cache of the sources' conditional GETs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from ..model import Image, Post
from .common import Part, from_iso, iso, now, wrap_errors


def post_to_row(post: Post) -> str:
    d = post.to_json()
    d["content"] = post.content
    if post.image:
        d["image"] = {
            "url": post.image.url,
            "alt": post.image.alt,
            "width": post.image.width,
            "height": post.image.height,
        }
    return json.dumps(d, ensure_ascii=False)


def post_from_row(data: str) -> Post:
    d = json.loads(data)
    img = d.get("image")
    return Post(
        key=d["key"],
        url=d["url"],
        title=d["title"],
        source=d["source"],
        summary=d.get("summary") or "",
        content=d.get("content") or "",
        author=d.get("author") or "",
        published=from_iso(d.get("published")),
        updated=from_iso(d.get("updated")),
        tags=tuple(d.get("tags") or ()),
        categories=tuple(d.get("categories") or ()),
        image=Image(**img) if img else None,
    )


class Posts(Part):
    @wrap_errors
    def record_posts(self, posts: Iterable[Post]) -> dict[str, datetime]:
        """Upsert posts as seen; return every given key's first-seen time.

        On a read-only ledger nothing is recorded: posts never seen count as seen now.
        """
        seen: dict[str, datetime] = {}
        ts = iso(now())
        if self.readonly:
            posts = list(posts)
            known = self.first_seen(p.key for p in posts)
            return {p.key: known.get(p.key) or datetime.fromisoformat(str(ts)) for p in posts}
        with self.db.transaction():
            for post in posts:
                self.db.execute(
                    """
                    INSERT INTO posts (key, source, url, title, content_hash, published,
                                       first_seen, data)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (key) DO UPDATE SET
                        source = excluded.source, url = excluded.url, title = excluded.title,
                        content_hash = excluded.content_hash, published = excluded.published,
                        data = excluded.data
                    """,
                    (
                        post.key,
                        post.source,
                        post.url,
                        post.title,
                        post.content_hash,
                        iso(post.published),
                        ts,
                        post_to_row(post),
                    ),
                )
                row = self.db.execute(
                    "SELECT first_seen FROM posts WHERE key = ?", (post.key,)
                ).fetchone()
                seen[post.key] = datetime.fromisoformat(row[0])
        return seen

    @wrap_errors
    def first_seen(self, keys: Iterable[str]) -> dict[str, datetime]:
        """When each of these posts was first seen (keys never seen are left out)."""
        out = {}
        for key in keys:
            row = self.db.execute("SELECT first_seen FROM posts WHERE key = ?", (key,)).fetchone()
            if row:
                out[key] = datetime.fromisoformat(row[0])
        return out

    @wrap_errors
    def has_posts(self) -> bool:
        return self.db.execute("SELECT 1 FROM posts LIMIT 1").fetchone() is not None

    @wrap_errors
    def posts_in_editions(self, newsletter: str) -> set[str]:
        """Keys of posts already taken by an edition of ``newsletter``."""
        return {
            r[0]
            for r in self.db.execute(
                """SELECT ep.post_key FROM edition_posts ep
                   JOIN editions e ON e.id = ep.edition_id
                   WHERE e.newsletter = ? AND e.status != 'rejected'""",
                (newsletter,),
            )
        }

    @wrap_errors
    def post_seq(self) -> int:
        """A number that grows with every post first seen (the posts table's rowid)."""
        return int(self.db.execute("SELECT coalesce(max(rowid), 0) FROM posts").fetchone()[0])

    @wrap_errors
    def posts_seen_by(self, seq: int | None = None, *, before: datetime | None = None) -> set[str]:
        """Keys of posts first seen up to :meth:`post_seq` ``seq``, or (for ledgers that
        did not note one) first seen strictly before ``before``."""
        if seq is not None:
            rows = self.db.execute("SELECT key FROM posts WHERE rowid <= ?", (seq,))
        else:
            rows = self.db.execute("SELECT key FROM posts WHERE first_seen < ?", (iso(before),))
        return {r[0] for r in rows}

    @wrap_errors
    def get_post(self, key: str) -> Post | None:
        row = self.db.execute("SELECT data FROM posts WHERE key = ?", (key,)).fetchone()
        return post_from_row(row[0]) if row else None

    # --- the HTTP cache ------------------------------------------------------------

    @wrap_errors
    def http_cache_get(self, url: str) -> tuple[str | None, str | None, bytes | None]:
        row = self.db.execute(
            "SELECT etag, last_modified, body FROM http_cache WHERE url = ?", (url,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else (None, None, None)

    @wrap_errors
    def http_cache_put(
        self, url: str, etag: str | None, last_modified: str | None, body: bytes
    ) -> None:
        if self.readonly:
            return  # a cache: a read-only ledger just does without
        self.db.execute(
            """INSERT INTO http_cache (url, etag, last_modified, body, fetched)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (url) DO UPDATE SET etag = excluded.etag,
                   last_modified = excluded.last_modified, body = excluded.body,
                   fetched = excluded.fetched""",
            (url, etag, last_modified, body, iso(now())),
        )
