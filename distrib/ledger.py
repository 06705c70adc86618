"""The ledger: distrib's state in one SQLite file (WAL).

What went where, when, with which remote id.  Its UNIQUE keys make a second send of
the same thing impossible: every delivery is *claimed* (a committed row) before the
mailer or channel is called and *marked* (committed) right after, one item at a time,
never a save at the end of a run.  A run killed at any instant and run again resends at
most the items whose rows it finds still ``claimed``: the ones in flight at the kill.

The schema is the one DDL string below; migrations are numbered functions keyed in
MIGRATIONS; the version lives in ``PRAGMA user_version`` and ``PRAGMA application_id``
marks the file as ours.  A ledger newer than this code is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import secrets
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from .errors import LedgerError, LockedError
from .model import DeliveryStatus, Edition, Image, Markers, Outcome, Post
from .paths import make_private_dir

APPLICATION_ID = 0x64737462  # "dstb"

SCHEMA_V1 = """
-- Every post any source has given us, as last seen.
CREATE TABLE posts (
    key          TEXT PRIMARY KEY,      -- Post.key: guid / Atom id, else canonical URL
    source       TEXT NOT NULL,         -- the [[sources]] name that gave it
    url          TEXT NOT NULL,
    title        TEXT NOT NULL,
    content_hash TEXT NOT NULL,         -- tells an edit from a new post; never the key
    published    TEXT,                  -- ISO 8601 UTC; NULL: the source gave no usable date
    first_seen   TEXT NOT NULL,         -- when distrib first saw it; stands in for a NULL published
    data         TEXT NOT NULL          -- the Post as JSON, for rebuilding editions
);

-- One digest issue.  Its rendered HTML and text are stored once: a resumed send sends
-- these bytes, not a fresh render.
CREATE TABLE editions (
    id         INTEGER PRIMARY KEY,
    newsletter TEXT NOT NULL,           -- "digest" or a [[newsletters]] name
    subject    TEXT NOT NULL,
    preheader  TEXT NOT NULL,
    created    TEXT NOT NULL,           -- ISO 8601 UTC
    html       TEXT NOT NULL,           -- with the per-recipient markers (model.Markers)
    text       TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'sending'  -- sending: deliveries unfinished; done
);
-- serves: "is an edition of this newsletter unfinished?" and "the last edition"
CREATE INDEX editions_by_newsletter ON editions (newsletter, status, created);

CREATE TABLE edition_posts (
    edition_id INTEGER NOT NULL REFERENCES editions (id),
    post_key   TEXT NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (edition_id, post_key)
);
-- serves: "posts already in an edition of this newsletter"
CREATE INDEX edition_posts_by_post ON edition_posts (post_key);

-- One row per (edition, recipient): claimed -> sent | failed | deferred.
CREATE TABLE email_deliveries (
    edition_id INTEGER NOT NULL REFERENCES editions (id),
    address    TEXT NOT NULL,           -- lower-cased recipient address
    status     TEXT NOT NULL,           -- claimed | sent | failed | deferred
    attempts   INTEGER NOT NULL DEFAULT 1,
    remote_id  TEXT,                    -- the Message-ID or the provider's id; NULL until sent
    error      TEXT,                    -- the last failure; NULL when none
    not_before TEXT,                    -- deferred: not retried before this time; NULL: at once
    updated    TEXT NOT NULL,
    PRIMARY KEY (edition_id, address)
) WITHOUT ROWID;

-- One row per (post, channel): the share post's state.
CREATE TABLE share_deliveries (
    post_key   TEXT NOT NULL,
    channel    TEXT NOT NULL,           -- the [[channels]] name (one account)
    status     TEXT NOT NULL,           -- claimed | sent | failed | deferred
    attempts   INTEGER NOT NULL DEFAULT 1,
    remote_id  TEXT,                    -- status id / post uri; NULL until sent
    text       TEXT,                    -- what was (to be) posted
    error      TEXT,
    not_before TEXT,
    updated    TEXT NOT NULL,
    PRIMARY KEY (post_key, channel)
) WITHOUT ROWID;
-- serves: per-channel limits (posts in the last hour/day, the minimum gap)
CREATE INDEX share_deliveries_by_channel ON share_deliveries (channel, status, updated);

-- Subscribers kept by distrib itself, and the suppression list every send consults.
CREATE TABLE subscribers (
    address TEXT PRIMARY KEY,           -- lower-cased
    name    TEXT NOT NULL DEFAULT '',
    status  TEXT NOT NULL DEFAULT 'active',  -- active | unsubscribed | bounced | complained
    reason  TEXT,                       -- why suppressed; NULL when active
    created TEXT NOT NULL,
    updated TEXT NOT NULL
) WITHOUT ROWID;

-- Conditional GET: the validators of the last answer of each URL.
CREATE TABLE http_cache (
    url           TEXT PRIMARY KEY,
    etag          TEXT,                 -- NULL: the server sent none
    last_modified TEXT,
    body          BLOB,                 -- the last 200 body, reused on a 304
    fetched       TEXT NOT NULL
) WITHOUT ROWID;

-- Small values adapters keep between runs (a Mastodon instance's limits, a Bluesky
-- session).  Keys are namespaced by the adapter: "mastodon:x-main:limits".
CREATE TABLE kv (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL,              -- JSON
    updated TEXT NOT NULL
) WITHOUT ROWID;
"""


def _update_from_0_to_1(db: sqlite3.Connection) -> None:
    # executescript() would COMMIT the migration's transaction; run statement by statement.
    buf = ""
    for line in SCHEMA_V1.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            db.execute(buf)
            buf = ""


def _update_from_1_to_2(db: sqlite3.Connection) -> None:
    # The random nonce of the edition's per-recipient markers (model.Markers); '' for the
    # editions recorded before it, whose HTML and text carry the fixed markers.
    db.execute("ALTER TABLE editions ADD COLUMN markers TEXT NOT NULL DEFAULT ''")


def _update_from_2_to_3(db: sqlite3.Connection) -> None:
    # Which run claimed a row: a row claimed by a run that is still going is never
    # claimed again by another (see Ledger.claim_email).  NULL: claimed before schema 3.
    db.execute("ALTER TABLE email_deliveries ADD COLUMN run TEXT")
    db.execute("ALTER TABLE share_deliveries ADD COLUMN run TEXT")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _update_from_0_to_1,
    1: _update_from_1_to_2,
    2: _update_from_2_to_3,
}
VERSION = len(MIGRATIONS)

T = TypeVar("T")


def wrap_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn sqlite3 errors into LedgerError naming the file."""

    @functools.wraps(fn)
    def wrapper(self: Ledger, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            if "readonly" in str(e):  # "attempt to write a readonly database"
                raise LedgerError(_readonly_message(self.path, "this command")) from None
            raise LedgerError(f"ledger {self.path}: {e}") from e

    return wrapper


def now() -> datetime:
    """The clock; tests patch this."""
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds") if dt else None


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


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
        published=_from_iso(d.get("published")),
        updated=_from_iso(d.get("updated")),
        tags=tuple(d.get("tags") or ()),
        categories=tuple(d.get("categories") or ()),
        image=Image(**img) if img else None,
    )


@dataclass(frozen=True, slots=True)
class ShareRow:
    post_key: str
    channel: str
    status: str
    attempts: int
    remote_id: str | None
    text: str | None
    error: str | None
    not_before: datetime | None
    updated: datetime


#: Descriptors of ledger files opened for the run lock, by (device, inode), kept open for
#: the life of the process and reused: closing *any* descriptor of a file drops every
#: POSIX lock this process holds on it, SQLite's own included
#: (https://sqlite.org/howtocorrupt.html, section 2.2), so they are never closed.
_SPARE_FDS: dict[tuple[int, int], list[int]] = {}
_SPARE_FDS_LOCK = threading.Lock()


def _take_fd(path: Path) -> int:
    """A read-only descriptor of the ledger file itself (symlinks followed)."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    with _SPARE_FDS_LOCK:
        spare = _SPARE_FDS.get(key, [])
        while spare:
            fd = spare.pop()
            got = os.fstat(fd)
            # A deleted file's inode number can come back for a new file: not this one.
            if (got.st_dev, got.st_ino) == key and got.st_nlink > 0:
                return fd
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _cannot_lock(path: Path, e: OSError) -> LedgerError:
    return LedgerError(
        f"cannot lock the ledger {path} ({e.strerror or e}); keep it on a local file system"
    )


def _give_back_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    got = os.fstat(fd)
    with _SPARE_FDS_LOCK:
        _SPARE_FDS.setdefault((got.st_dev, got.st_ino), []).append(fd)


class Ledger:
    """One SQLite file.  Open with :func:`open_ledger`; use as a context manager.

    The run lock is an exclusive ``flock`` on the database file itself, so every path
    that names the file (a symlink, a hard link, ``..``, a bind mount) meets the same
    lock, and the kernel drops it when the process ends, even by ``kill -9``.  A
    process that claims deliveries without the run lock holds it shared: such
    processes never take each other's claims, and a run cannot start beside them.
    """

    def __init__(self, path: Path, db: sqlite3.Connection, *, readonly: bool = False):
        self.path = path
        self.db = db
        #: opened read-only (the file or its folder cannot be written): reading works,
        #: a command that must write says so (:meth:`must_write`).
        self.readonly = readonly
        #: this process's mark on the rows it claims
        self.run = secrets.token_hex(8)
        self._lock_fd: int | None = None
        self._lock_kind: int | None = None  # fcntl.LOCK_EX (the run lock) or LOCK_SH

    # --- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        self.unlock()
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def must_write(self, what: str = "this command") -> None:
        """Raise the one-line LedgerError of a read-only ledger."""
        if self.readonly:
            raise LedgerError(_readonly_message(self.path, what))

    def _file_backed(self) -> bool:
        return str(self.path) != ":memory:"

    def lock(self) -> None:
        """Take the run lock: one run at a time per ledger file.  Released at exit, even a kill."""
        self.must_write()
        if not self._file_backed() or self._lock_kind == fcntl.LOCK_EX:
            return
        self.unlock()  # a shared hold of ours would block the exclusive one
        fd = _take_fd(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _give_back_fd(fd)
            holder = self.kv_get("run:holder") or "unknown process"
            raise LockedError(
                f"another distrib run ({holder}) is using the ledger "
                f"{self.path}; this run does nothing. Wait for it to finish"
            ) from None
        except OSError as e:
            _give_back_fd(fd)
            raise _cannot_lock(self.path, e) from None
        self._lock_fd, self._lock_kind = fd, fcntl.LOCK_EX
        self.kv_put("run:holder", f"pid {os.getpid()}, started {_iso(now())}")

    def lock_holder(self) -> str | None:
        """Who holds the run lock now ("pid 123, started ..."), or None when no run does."""
        if not self._file_backed() or self._lock_fd is not None:
            return None  # in memory, or this process holds it
        fd = _take_fd(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.kv_get("run:holder") or "unknown process"
        except OSError:
            return None
        finally:
            _give_back_fd(fd)
        return None

    def unlock(self) -> None:
        if self._lock_fd is not None:
            _give_back_fd(self._lock_fd)
            self._lock_fd = self._lock_kind = None

    def _exclusive(self) -> bool:
        """Whether this process may take over rows other runs left ``claimed``.

        Only the run lock proves that the runs which claimed them are gone.  Without it
        the ledger is held shared (from the first claim until close), which keeps a
        run from starting beside this process.
        """
        if self._lock_kind == fcntl.LOCK_EX or not self._file_backed():
            return True
        if self._lock_kind is None:
            fd = _take_fd(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                _give_back_fd(fd)
                holder = self.kv_get("run:holder") or "unknown process"
                raise LockedError(
                    f"another distrib run ({holder}) is using the ledger {self.path}; "
                    "nothing is claimed beside it. Wait for it to finish"
                ) from None
            except OSError as e:
                _give_back_fd(fd)
                raise _cannot_lock(self.path, e) from None
            self._lock_fd, self._lock_kind = fd, fcntl.LOCK_SH
        return False

    @contextlib.contextmanager
    def checkpoints_in_background(self, every: float = 0.1) -> Iterator[None]:
        """While inside, a second connection in a thread checkpoints the WAL every
        ``every`` seconds, instead of the commit that crosses ``wal_autocheckpoint``.

        A checkpoint syncs the WAL and the database file (https://sqlite.org/wal.html,
        synchronous=NORMAL): milliseconds the committing thread waits.  During a send
        that thread is the event loop driving every SMTP connection, so each checkpoint
        stalled them all; now only one in four does, and it has little left to copy.
        Every commit is still its own transaction, and the WAL is synced at least as
        often as before at ~5,000 messages/s (about every 1,000 pages), more often when
        slower.  A PASSIVE checkpoint never blocks the writer.
        """
        if self.db.in_transaction or str(self.path) == ":memory:":
            yield
            return
        stop = threading.Event()

        def run() -> None:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            except sqlite3.Error:
                return
            # On an error this thread stops; the commits checkpoint again once we are done.
            try:
                with contextlib.suppress(sqlite3.Error):
                    while not stop.wait(every):
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                db.close()

        (previous,) = self.db.execute("PRAGMA wal_autocheckpoint").fetchone()
        # The WAL only restarts from its beginning after a checkpoint that caught up with
        # every commit, which one running beside a busy writer never does: the commits
        # still checkpoint, rarely, so the file stays bounded (4 x the usual size).
        self.db.execute(f"PRAGMA wal_autocheckpoint = {int(previous) * 4}")
        thread = threading.Thread(target=run, name="ledger-checkpoint", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.db.execute(f"PRAGMA wal_autocheckpoint = {int(previous)}")

    # --- posts -------------------------------------------------------------------

    @wrap_errors
    def record_posts(self, posts: Iterable[Post]) -> dict[str, datetime]:
        """Upsert posts as seen; return every given key's first-seen time.

        On a read-only ledger nothing is recorded: posts never seen count as seen now.
        """
        seen: dict[str, datetime] = {}
        ts = _iso(now())
        if self.readonly:
            posts = list(posts)
            known = self.first_seen(p.key for p in posts)
            return {p.key: known.get(p.key) or datetime.fromisoformat(str(ts)) for p in posts}
        with self.transaction():
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
                        _iso(post.published),
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

    def baseline(self, scope: str) -> datetime | None:
        """When a first-run baseline was taken for ``scope`` ("newsletter:digest",
        "channel:x-main"): posts first seen at or before it are never sent there."""
        value = self.kv_get(f"baseline:{scope}")
        return datetime.fromisoformat(value) if value else None

    def set_baseline(self, scope: str, when: datetime) -> None:
        self.kv_put(f"baseline:{scope}", _iso(when))

    @wrap_errors
    def posts_in_editions(self, newsletter: str) -> set[str]:
        """Keys of posts already taken by an edition of ``newsletter``."""
        return {
            r[0]
            for r in self.db.execute(
                """SELECT ep.post_key FROM edition_posts ep
                   JOIN editions e ON e.id = ep.edition_id WHERE e.newsletter = ?""",
                (newsletter,),
            )
        }

    @wrap_errors
    def post_seq(self) -> int:
        """A number that grows with every post first seen (the posts table's rowid)."""
        return self.db.execute("SELECT coalesce(max(rowid), 0) FROM posts").fetchone()[0]

    @wrap_errors
    def posts_seen_by(self, seq: int | None = None, *, before: datetime | None = None) -> set[str]:
        """Keys of posts first seen up to :meth:`post_seq` ``seq``, or (for ledgers that
        did not note one) first seen strictly before ``before``."""
        if seq is not None:
            rows = self.db.execute("SELECT key FROM posts WHERE rowid <= ?", (seq,))
        else:
            rows = self.db.execute("SELECT key FROM posts WHERE first_seen < ?", (_iso(before),))
        return {r[0] for r in rows}

    @wrap_errors
    def get_post(self, key: str) -> Post | None:
        row = self.db.execute("SELECT data FROM posts WHERE key = ?", (key,)).fetchone()
        return post_from_row(row[0]) if row else None

    # --- editions ----------------------------------------------------------------

    @wrap_errors
    def create_edition(
        self,
        newsletter: str,
        post_keys: Iterable[str],
        subject: str,
        preheader: str,
        html: str,
        text: str,
        *,
        edition_id: int | None = None,
        markers: Markers | None = None,
    ) -> Edition:
        """Record an edition; ``edition_id`` from :meth:`next_edition_id` when the
        rendered HTML already links to its own number (the archive's page); ``markers``
        the renderer's per-recipient gaps in ``html`` and ``text``."""
        markers = markers or Markers()
        created = now()
        keys = tuple(post_keys)
        with self.transaction():
            cur = self.db.execute(
                """INSERT INTO editions (id, newsletter, subject, preheader, created, html, text, markers)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (edition_id, newsletter, subject, preheader, _iso(created), html, text, markers.nonce),
            )
            edition_id = cur.lastrowid
            assert edition_id is not None
            self.db.executemany(
                "INSERT INTO edition_posts (edition_id, post_key, position) VALUES (?, ?, ?)",
                [(edition_id, k, i) for i, k in enumerate(keys)],
            )
        return Edition(
            edition_id, newsletter, keys, subject, preheader, created, html, text, markers=markers
        )

    @wrap_errors
    def next_edition_id(self) -> int:
        """The number the next edition will get (stable under the run lock)."""
        return self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM editions").fetchone()[0]

    def _edition(self, row: sqlite3.Row) -> Edition:
        keys = tuple(
            r[0]
            for r in self.db.execute(
                "SELECT post_key FROM edition_posts WHERE edition_id = ? ORDER BY position",
                (row["id"],),
            )
        )
        return Edition(
            id=row["id"],
            newsletter=row["newsletter"],
            post_keys=keys,
            subject=row["subject"],
            preheader=row["preheader"],
            created=datetime.fromisoformat(row["created"]),
            html=row["html"],
            text=row["text"],
            status=row["status"],
            markers=Markers(row["markers"]),
        )

    @wrap_errors
    def unfinished_editions(self, newsletter: str) -> list[Edition]:
        rows = self.db.execute(
            "SELECT * FROM editions WHERE newsletter = ? AND status = 'sending' ORDER BY id",
            (newsletter,),
        ).fetchall()
        return [self._edition(r) for r in rows]

    @wrap_errors
    def last_edition(self, newsletter: str) -> Edition | None:
        row = self.db.execute(
            "SELECT * FROM editions WHERE newsletter = ? ORDER BY id DESC LIMIT 1", (newsletter,)
        ).fetchone()
        return self._edition(row) if row else None

    @wrap_errors
    def get_edition(self, edition_id: int) -> Edition | None:
        row = self.db.execute("SELECT * FROM editions WHERE id = ?", (edition_id,)).fetchone()
        return self._edition(row) if row else None

    @wrap_errors
    def editions(self, newsletter: str | None = None) -> list[Edition]:
        if newsletter is None:
            rows = self.db.execute("SELECT * FROM editions ORDER BY id").fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM editions WHERE newsletter = ? ORDER BY id", (newsletter,)
            ).fetchall()
        return [self._edition(r) for r in rows]

    @wrap_errors
    def finish_edition(self, edition_id: int) -> None:
        self.db.execute("UPDATE editions SET status = 'done' WHERE id = ?", (edition_id,))

    # --- email deliveries --------------------------------------------------------

    @wrap_errors
    def claim_email(self, edition_id: int, address: str) -> bool:
        """Claim (edition, address) before sending; False if it is not to be sent now.

        A row already ``sent`` or ``failed`` is never claimed again; a ``deferred`` one
        once its ``not_before`` has passed; a ``claimed`` one only by the run that
        claimed it, or (in flight when a run died) by the run holding the run lock: that
        is the only way a message can go out twice.  The claim is one statement whose
        row count says whether this process won it, so two processes on one ledger
        never both claim a row, even without the run lock.
        """
        exclusive = self._exclusive()
        ts = _iso(now())
        cur = self.db.execute(
            """
            INSERT INTO email_deliveries AS d (edition_id, address, status, attempts, updated, run)
            VALUES (?, ?, 'claimed', 1, ?, ?)
            ON CONFLICT (edition_id, address) DO UPDATE SET
                status = 'claimed', attempts = d.attempts + 1, updated = excluded.updated,
                run = excluded.run
            WHERE (d.status = 'claimed' AND (d.run IS excluded.run OR ?))
               OR (d.status = 'deferred' AND (d.not_before IS NULL OR d.not_before <= excluded.updated))
            """,
            (edition_id, address.lower(), ts, self.run, exclusive),
        )
        return cur.rowcount == 1

    @wrap_errors
    def mark_email(self, edition_id: int, address: str, outcome: Outcome) -> None:
        if outcome.release:
            self.release_email(edition_id, address, outcome.error)
            return
        not_before = None
        if outcome.status is DeliveryStatus.DEFERRED:
            not_before = _iso(now() + timedelta(seconds=outcome.retry_after or 300))
        self.db.execute(
            """UPDATE email_deliveries SET status = ?, remote_id = ?, error = ?,
                      not_before = ?, updated = ?
               WHERE edition_id = ? AND address = ?""",
            (
                outcome.status.value,
                outcome.remote_id or None,
                outcome.error or None,
                not_before,
                _iso(now()),
                edition_id,
                address.lower(),
            ),
        )
        if outcome.bounce:
            self.suppress(address, "bounced", outcome.error)

    @wrap_errors
    def release_email(self, edition_id: int, address: str, error: str = "") -> None:
        """Put a claimed delivery back as it was before this run's claim: a setup problem
        (an unverified sender, refused credentials) stopped the send, not the recipient.
        A first claim is removed (the recipient is untouched); an earlier deferral stays,
        due at once, without counting this attempt."""
        with self.transaction() as db:
            db.execute(
                """DELETE FROM email_deliveries
                   WHERE edition_id = ? AND address = ? AND status = 'claimed' AND attempts <= 1""",
                (edition_id, address.lower()),
            )
            db.execute(
                """UPDATE email_deliveries SET status = 'deferred', attempts = attempts - 1,
                          error = ?, not_before = NULL, updated = ?
                   WHERE edition_id = ? AND address = ? AND status = 'claimed'""",
                (error or None, _iso(now()), edition_id, address.lower()),
            )

    @wrap_errors
    def requeue_failed(self, edition_id: int, *, in_doubt: bool = False) -> int:
        """Forget the failed (and, with ``in_doubt``, the in-doubt) deliveries of an
        edition so that the next send tries them again, and reopen the edition.  Allowed
        once per edition: the time and the count are kept in ``kv`` under
        ``retry-failed:<edition id>``.  Addresses suppressed since (bounced, unsubscribed)
        stay failed.  Returns how many were re-queued."""
        key = f"retry-failed:{edition_id}"
        statuses = ("failed", "in_doubt") if in_doubt else ("failed",)
        marks = ", ".join("?" for _ in statuses)
        with self.transaction() as db:
            cur = db.execute(
                f"""DELETE FROM email_deliveries
                    WHERE edition_id = ? AND status IN ({marks})
                      AND address NOT IN (SELECT address FROM subscribers WHERE status != 'active')""",
                (edition_id, *statuses),
            )
            n = cur.rowcount
            if n:
                db.execute("UPDATE editions SET status = 'sending' WHERE id = ?", (edition_id,))
                db.execute(
                    """INSERT INTO kv (key, value, updated) VALUES (?, ?, ?)
                       ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                                                      updated = excluded.updated""",
                    (key, json.dumps({"requeued": n, "at": _iso(now())}), _iso(now())),
                )
        return n

    @wrap_errors
    def failed_requeued(self, edition_id: int) -> dict[str, Any] | None:
        """When and how many failed deliveries of the edition ``requeue_failed`` put back."""
        row = self.db.execute(
            "SELECT value FROM kv WHERE key = ?", (f"retry-failed:{edition_id}",)
        ).fetchone()
        return json.loads(row[0]) if row else None

    @wrap_errors
    def email_status(self, edition_id: int, address: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM email_deliveries WHERE edition_id = ? AND address = ?",
            (edition_id, address.lower()),
        ).fetchone()
        return row[0] if row else None

    @wrap_errors
    def email_counts(self, edition_id: int) -> dict[str, int]:
        # The four states every ledger knows, and any other found (in_doubt).
        counts = {s.value: 0 for s in DeliveryStatus if s is not DeliveryStatus.IN_DOUBT}
        for status, n in self.db.execute(
            "SELECT status, count(*) FROM email_deliveries WHERE edition_id = ? GROUP BY status",
            (edition_id,),
        ):
            counts[status] = n
        return counts

    @wrap_errors
    def emails_sent_since(self, since: datetime) -> int:
        """Messages sent (any edition) since ``since``: what a per-hour/per-day quota has used."""
        row = self.db.execute(
            "SELECT count(*) FROM email_deliveries WHERE status = 'sent' AND updated >= ?",
            (_iso(since),),
        ).fetchone()
        return int(row[0])

    @wrap_errors
    def fail_stale_deferred(self, edition_id: int, max_attempts: int) -> int:
        """Give up on deliveries deferred ``max_attempts`` times."""
        cur = self.db.execute(
            """UPDATE email_deliveries SET status = 'failed',
                      error = 'gave up after ' || attempts || ' attempts: ' || coalesce(error, '')
               WHERE edition_id = ? AND status = 'deferred' AND attempts >= ?""",
            (edition_id, max_attempts),
        )
        return cur.rowcount

    # --- share deliveries --------------------------------------------------------

    @wrap_errors
    def claim_share(self, post_key: str, channel: str, text: str) -> bool:
        """Claim (post, channel) before posting; same rules as :meth:`claim_email`."""
        exclusive = self._exclusive()
        ts = _iso(now())
        cur = self.db.execute(
            """
            INSERT INTO share_deliveries AS d (post_key, channel, status, attempts, text, updated, run)
            VALUES (?, ?, 'claimed', 1, ?, ?, ?)
            ON CONFLICT (post_key, channel) DO UPDATE SET
                status = 'claimed', attempts = d.attempts + 1, text = excluded.text,
                updated = excluded.updated, run = excluded.run
            WHERE (d.status = 'claimed' AND (d.run IS excluded.run OR ?))
               OR (d.status = 'deferred' AND (d.not_before IS NULL OR d.not_before <= excluded.updated))
            """,
            (post_key, channel, text, ts, self.run, exclusive),
        )
        return cur.rowcount == 1

    @wrap_errors
    def mark_share(self, post_key: str, channel: str, outcome: Outcome) -> None:
        not_before = None
        if outcome.status is DeliveryStatus.DEFERRED:
            not_before = _iso(now() + timedelta(seconds=outcome.retry_after or 900))
        self.db.execute(
            """UPDATE share_deliveries SET status = ?, remote_id = ?, error = ?,
                      not_before = ?, updated = ?
               WHERE post_key = ? AND channel = ?""",
            (
                outcome.status.value,
                outcome.remote_id or None,
                outcome.error or None,
                not_before,
                _iso(now()),
                post_key,
                channel,
            ),
        )

    @wrap_errors
    def share_row(self, post_key: str, channel: str) -> ShareRow | None:
        row = self.db.execute(
            "SELECT * FROM share_deliveries WHERE post_key = ? AND channel = ?",
            (post_key, channel),
        ).fetchone()
        if not row:
            return None
        return ShareRow(
            post_key=row["post_key"],
            channel=row["channel"],
            status=row["status"],
            attempts=row["attempts"],
            remote_id=row["remote_id"],
            text=row["text"],
            error=row["error"],
            not_before=_from_iso(row["not_before"]),
            updated=datetime.fromisoformat(row["updated"]),
        )

    @wrap_errors
    def shares_since(self, channel: str, since: datetime) -> list[datetime]:
        """When this channel's sent or in-flight posts went out, since ``since`` (newest first)."""
        return [
            datetime.fromisoformat(r[0])
            for r in self.db.execute(
                """SELECT updated FROM share_deliveries
                   WHERE channel = ? AND status IN ('sent', 'claimed') AND updated >= ?
                   ORDER BY updated DESC""",
                (channel, _iso(since)),
            )
        ]

    @wrap_errors
    def claimed_shares(self, channel: str) -> list[str]:
        """Posts a dead run left in flight on this channel, oldest claim first.

        Without the run lock only this process's own claims: another's may be alive.
        """
        # Asked, not taken: a dry run lists beside a running run without locking it out.
        exclusive = self._lock_kind == fcntl.LOCK_EX or not self._file_backed()
        return [
            r[0]
            for r in self.db.execute(
                """SELECT post_key FROM share_deliveries
                   WHERE channel = ? AND status = 'claimed' AND (run IS ? OR ?)
                   ORDER BY updated""",
                (channel, self.run, exclusive),
            )
        ]

    @wrap_errors
    def shared_keys(self, channel: str) -> set[str]:
        """Posts that have a row for this channel in any state."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT post_key FROM share_deliveries WHERE channel = ?", (channel,)
            )
        }

    # --- subscribers and suppression --------------------------------------------

    @wrap_errors
    def suppressed(self) -> set[str]:
        return {
            r[0] for r in self.db.execute("SELECT address FROM subscribers WHERE status != 'active'")
        }

    @wrap_errors
    def is_suppressed(self, address: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM subscribers WHERE address = ? AND status != 'active'",
            (address.lower(),),
        ).fetchone()
        return row is not None

    @wrap_errors
    def suppress(self, address: str, status: str, reason: str = "") -> None:
        ts = _iso(now())
        self.db.execute(
            """INSERT INTO subscribers (address, status, reason, created, updated)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (address) DO UPDATE SET status = excluded.status,
                      reason = excluded.reason, updated = excluded.updated""",
            (address.lower(), status, reason or None, ts, ts),
        )

    @wrap_errors
    def add_subscriber(self, address: str, name: str = "") -> bool:
        """Add an active subscriber; False if the address is already known (any status)."""
        ts = _iso(now())
        cur = self.db.execute(
            """INSERT INTO subscribers (address, name, status, created, updated)
               VALUES (?, ?, 'active', ?, ?) ON CONFLICT (address) DO NOTHING""",
            (address.lower(), name, ts, ts),
        )
        return cur.rowcount == 1

    @wrap_errors
    def iter_subscribers(self, status: str | None = "active") -> Iterator[tuple[str, str]]:
        """(address, name) pairs, streamed in address order."""
        if status is None:
            cur = self.db.execute("SELECT address, name FROM subscribers ORDER BY address")
        else:
            cur = self.db.execute(
                "SELECT address, name FROM subscribers WHERE status = ? ORDER BY address", (status,)
            )
        yield from cur

    @wrap_errors
    def get_subscriber(self, address: str) -> sqlite3.Row | None:
        """The subscribers row of ``address`` (any status), or None."""
        return self.db.execute(
            "SELECT * FROM subscribers WHERE address = ?", (address.lower(),)
        ).fetchone()

    @wrap_errors
    def subscriber_page(
        self, status: str | None = "active", after: str = "", limit: int = 1000
    ) -> list[sqlite3.Row]:
        """Up to ``limit`` rows with an address greater than ``after``, in address order.

        Keyset pagination: a million subscribers stream in pages without one long-lived
        read cursor (which would pin the WAL) and without a big list in memory.
        """
        if status is None:
            return self.db.execute(
                "SELECT * FROM subscribers WHERE address > ? ORDER BY address LIMIT ?",
                (after, limit),
            ).fetchall()
        return self.db.execute(
            "SELECT * FROM subscribers WHERE status = ? AND address > ? ORDER BY address LIMIT ?",
            (status, after, limit),
        ).fetchall()

    @wrap_errors
    def subscriber_counts(self) -> dict[str, int]:
        """Rows per status (active, unsubscribed, bounced, complained)."""
        counts = {s: 0 for s in ("active", "unsubscribed", "bounced", "complained")}
        for status, n in self.db.execute("SELECT status, count(*) FROM subscribers GROUP BY status"):
            counts[status] = n
        return counts

    @wrap_errors
    def suppress_active(self, address: str, status: str, reason: str = "") -> bool:
        """Suppress a known *active* subscriber; False if unknown or already suppressed."""
        cur = self.db.execute(
            """UPDATE subscribers SET status = ?, reason = ?, updated = ?
               WHERE address = ? AND status = 'active'""",
            (status, reason or None, _iso(now()), address.lower()),
        )
        return cur.rowcount == 1

    # --- http cache and kv -------------------------------------------------------

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
            (url, etag, last_modified, body, _iso(now())),
        )

    @wrap_errors
    def kv_get(self, key: str, max_age: timedelta | None = None) -> Any:
        row = self.db.execute("SELECT value, updated FROM kv WHERE key = ?", (key,)).fetchone()
        if not row:
            return None
        if max_age is not None and datetime.fromisoformat(row[1]) < now() - max_age:
            return None
        return json.loads(row[0])

    @wrap_errors
    def kv_put(self, key: str, value: Any) -> None:
        self.db.execute(
            """INSERT INTO kv (key, value, updated) VALUES (?, ?, ?)
               ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated""",
            (key, json.dumps(value, ensure_ascii=False), _iso(now())),
        )

    @wrap_errors
    def kv_put_new(self, key: str, value: Any) -> Any:
        """Store ``value`` under ``key`` unless a value is there already; return the one
        kept.  Two processes making a value at once (two ``distrib serve`` replicas making
        the signing key) both end up with the first one stored."""
        self.db.execute(
            "INSERT INTO kv (key, value, updated) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, json.dumps(value, ensure_ascii=False), _iso(now())),
        )
        return self.kv_get(key)

    # --- helpers -----------------------------------------------------------------

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); the connection is in autocommit."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")


SQLITE_HEADER = b"SQLite format 3\x00"


def _readonly_message(path: Path, what: str) -> str:
    return (
        f"the ledger {path} is read-only here (the file or its folder cannot be written); "
        f"{what} writes to it: run it as the user who owns the ledger, or make both writable"
    )


def _migrate(db: sqlite3.Connection, path: Path, version: int) -> None:
    while version < VERSION:
        try:
            db.execute("BEGIN IMMEDIATE")
            MIGRATIONS[version](db)
            if db.execute("PRAGMA foreign_key_check").fetchall():
                raise sqlite3.IntegrityError("foreign key check failed after migration")
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
            raise LedgerError(f"cannot migrate the ledger {path} to schema {version + 1}: {e}") from None
        version += 1


def _create(path: Path) -> None:
    """Make a new ledger at ``path`` whole or not at all: built (mode 0600) under a
    temporary name and linked into place, so a file at ``path`` is always a complete
    ledger and an empty or foreign one can be refused instead of started over."""
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            _migrate(db, path, 0)
            db.execute("PRAGMA journal_mode = WAL")
        finally:
            db.close()
        try:
            os.link(tmp, path)  # never replaces: another process may have made it meanwhile
        except FileExistsError:
            pass
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{tmp}{suffix}")


def _being_created(path: Path) -> bool:
    """Whether ``path``'s second link is the temporary name of :func:`_create`."""
    st = os.stat(path)
    for tmp in path.parent.glob(f".{path.name}.new-*"):
        with contextlib.suppress(OSError):
            got = os.stat(tmp)
            if (got.st_dev, got.st_ino) == (st.st_dev, st.st_ino):
                return True
    return False


def _check_file(path: Path) -> None:
    """Refuse an existing file that is not a distrib ledger, saying how to get one back."""
    with open(path, "rb") as f:
        head = f.read(100)
    fix = (
        f"restore it from a backup (cp BACKUP {path}), or to start over move it away "
        f"(mv {path} {path}.old) and run again"
    )
    if not head:
        raise LedgerError(
            f"the ledger {path} is empty (0 bytes), so its history, subscribers and signing key "
            f"are gone; {fix}"
        )
    links = os.stat(path).st_nlink
    for _ in range(40):
        if links == 1 or not _being_created(path):
            break
        time.sleep(0.05)  # another process is linking a new ledger into place
        links = os.stat(path).st_nlink
    if links > 1:
        # SQLite names the -wal and -shm after the path: through two names, two processes
        # would each keep their own journal of one file (https://sqlite.org/howtocorrupt.html).
        raise LedgerError(
            f"the ledger {path} has {links} hard links, and SQLite keeps its journal by name, so "
            "two names would corrupt it; remove the other links (find / -samefile "
            f"{path}) and use a symlink if you need a second name"
        )
    other = (
        f"set [ledger] path to the ledger, or if this was it, restore it from a backup "
        f"(cp BACKUP {path}) or move it away (mv {path} {path}.old) to start over"
    )
    if not head.startswith(SQLITE_HEADER):
        raise LedgerError(f"{path} is not a distrib ledger (not an SQLite file); {other}")
    if len(head) >= 72 and int.from_bytes(head[68:72], "big") != APPLICATION_ID:
        raise LedgerError(f"{path} is not a distrib ledger; {other}")


def open_ledger(path: Path) -> Ledger:
    """Open (creating or migrating) the ledger at ``path``.

    Only a missing file is created.  A file or folder this process cannot write is
    opened read-only (``Ledger.readonly``): reading commands work, writing ones say so.
    """
    path = Path(path)
    fix = "set [ledger] path to a file in a folder distrib can write"
    memory = str(path) == ":memory:"
    try:
        if not memory and not path.exists() and not path.is_symlink():
            make_private_dir(path.parent)
            _create(path)
        if not memory and not path.is_dir():
            _check_file(path)
        # SQLite writes its -wal and -shm beside the file a symlink points at.
        real = path.resolve() if not memory else path
        readonly = not memory and not (os.access(real, os.W_OK) and os.access(real.parent, os.W_OK))
        if readonly:
            db = _open_readonly(path)
        else:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    except OSError as e:
        # mkdir says "File exists" when a part of the path is a file: name that part.
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker:
            reason = f"{blocker} is a file, not a folder"
        elif path.is_dir():
            reason = "that is a folder"
        else:
            reason = e.strerror or str(e)
        raise LedgerError(f"cannot open the ledger {path}: {reason}; {fix}") from None
    except sqlite3.Error as e:
        reason = "that is a folder" if path.is_dir() else str(e)
        raise LedgerError(f"cannot open the ledger {path}: {reason}; {fix}") from None
    db.row_factory = sqlite3.Row
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        db.close()
        raise LedgerError(f"{path} is not a distrib ledger ({e}); set [ledger] path to another file") from None
    if not memory and app_id != APPLICATION_ID:
        db.close()
        raise LedgerError(f"{path} is not a distrib ledger; set [ledger] path to another file")
    if version > VERSION:
        db.close()
        raise LedgerError(
            f"the ledger {path} was written by a newer distrib (schema {version}, this one knows "
            f"{VERSION}); upgrade distrib"
        )
    if readonly:
        if version < VERSION:
            db.close()
            raise LedgerError(_readonly_message(path, f"upgrading it to schema {VERSION}"))
        return Ledger(path, db, readonly=True)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
    db.execute("PRAGMA foreign_keys = ON")
    _migrate(db, path, version)
    return Ledger(path, db)


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection.  ``mode=ro`` reads a WAL database while its -shm can be
    used; in a folder nobody can write (so nobody is writing the ledger now) and without
    a -shm, only ``immutable=1`` opens it (https://sqlite.org/uri.html)."""
    uri = "file:" + urllib.parse.quote(str(path.absolute()))
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)
