"""The ledger's schema (SQLite) and its migrations.

The schema is the one DDL string below; migrations are numbered functions keyed in
MIGRATIONS (each takes a raw ``sqlite3`` connection inside the migration's
transaction); the version lives in ``PRAGMA user_version`` and ``PRAGMA application_id``
marks the file as ours.  A ledger newer than this code is refused (:mod:`.files`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from ..errors import LedgerError

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


SCHEMA_V4 = """
-- A reader who left one newsletter of several (its unsubscribe link names it); the
-- subscribers row stays active for the others.  Leaving all is the subscribers status.
CREATE TABLE newsletter_optouts (
    address    TEXT NOT NULL,           -- lower-cased
    newsletter TEXT NOT NULL,           -- "digest" or a [[newsletters]] name
    reason     TEXT,
    created    TEXT NOT NULL,
    PRIMARY KEY (newsletter, address)
) WITHOUT ROWID;
"""


def _update_from_3_to_4(db: sqlite3.Connection) -> None:
    db.execute(SCHEMA_V4)


def _update_from_4_to_5(db: sqlite3.Connection) -> None:
    # The editor's hand.  Pins and skips for the next edition of a newsletter, used up
    # by the edition that goes out.  An edition waiting for approval has status
    # 'awaiting' (then 'sending' once approved, or 'rejected'); its "editor" column keeps
    # the fingerprint of the note, picks and sponsor it was rendered with and the posts
    # selection took before the picks, as JSON ('' for editions without approval).
    db.execute(
        """CREATE TABLE editor_picks (
            newsletter TEXT NOT NULL,
            post_key   TEXT NOT NULL,
            action     TEXT NOT NULL,        -- pin | skip
            position   INTEGER NOT NULL,     -- pins: the order given
            created    TEXT NOT NULL,
            PRIMARY KEY (newsletter, post_key)
        ) WITHOUT ROWID"""
    )
    db.execute("ALTER TABLE editions ADD COLUMN editor TEXT NOT NULL DEFAULT ''")


SCHEMA_V6 = """
-- The consent record: how and when each address signed up, confirmed, left, bounced.
-- Kept apart from subscribers so that a signup that is never confirmed adds no
-- subscriber (an unconfirmed address never receives an edition).
CREATE TABLE consent_events (
    id      INTEGER PRIMARY KEY,
    address TEXT NOT NULL,              -- lower-cased
    event   TEXT NOT NULL,              -- signup | confirmed | unsubscribed | bounced | complained
    how     TEXT NOT NULL,              -- form | import | cli | one-click | a provider's name
    detail  TEXT,                       -- the newsletters chosen, the provider's reason
    at      TEXT NOT NULL
);
CREATE INDEX consent_events_by_address ON consent_events (address, at);

-- Transactional mail (signup confirmations) queued by `distrib serve`'s handlers and
-- sent by its sender thread, or by the next `distrib run`: never inside an HTTP answer.
-- queued -> claimed -> sent | failed, one row per message.
CREATE TABLE mail_outbox (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,          -- confirm | welcome
    address     TEXT NOT NULL,          -- lower-cased
    name        TEXT NOT NULL DEFAULT '',
    newsletters TEXT NOT NULL,          -- the chosen newsletters, comma-separated
    status      TEXT NOT NULL DEFAULT 'queued',
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL
);
CREATE INDEX mail_outbox_by_status ON mail_outbox (status, id);
CREATE INDEX mail_outbox_by_address ON mail_outbox (address, created);

-- People erased at their request (`distrib subscribers forget`): only a keyed hash of
-- the address stays, so that a later import or `subscribers add` cannot re-add them.
CREATE TABLE forgotten (
    hash    TEXT PRIMARY KEY,           -- HMAC-SHA256 of the address, key in kv "forget:key"
    created TEXT NOT NULL
) WITHOUT ROWID;
"""


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run a migration's DDL statement by statement (``executescript`` would commit the
    migration's transaction; PostgreSQL's connection runs the same statements)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            db.execute(buf)
            buf = ""


def _update_from_5_to_6(db: sqlite3.Connection) -> None:
    _run_script(db, SCHEMA_V6)


SCHEMA_V7 = """
-- Click tracking ([tracking] clicks = true): the links of one edition, numbered from 1
-- in the order they first appear (HTML part, then text part), each with how many times
-- it was followed through `distrib serve` (GET /c/<edition>/<link>/<sig>).  No reader is
-- recorded: a count per link.  Written when the edition is rendered, just before its
-- editions row, so it has no foreign key; a link of no recorded edition is never served.
CREATE TABLE edition_links (
    edition_id INTEGER NOT NULL,
    link       INTEGER NOT NULL,        -- 1, 2, ... within the edition
    url        TEXT NOT NULL,           -- the original URL the redirect answers with
    clicks     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (edition_id, link)
) WITHOUT ROWID;

-- serves: "the edition last delivered to this address before a provider's bounce or
-- complaint" (`distrib status` rates per edition)
CREATE INDEX email_deliveries_by_address ON email_deliveries (address, updated);
"""


def _update_from_6_to_7(db: sqlite3.Connection) -> None:
    """Tables: edition_links (click tracking); index email_deliveries_by_address."""
    _run_script(db, SCHEMA_V7)


SCHEMA_V8 = """
-- Rate-limit counters of `distrib serve` (the signups one client IP may make), kept in
-- the ledger so that every replica on one ledger counts together: hits of a key in one
-- fixed bucket of its window; a row is useless after ``expires`` (epoch seconds).
CREATE TABLE rate_limits (
    key     TEXT NOT NULL,              -- such as 'signup-ip:192.0.2.1'
    bucket  INTEGER NOT NULL,           -- the bucket's start, epoch seconds
    hits    INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (key, bucket)
) WITHOUT ROWID;
CREATE INDEX rate_limits_by_expiry ON rate_limits (expires);
"""


def _update_from_7_to_8(db: sqlite3.Connection) -> None:
    """The table ``rate_limits``: serve's per-IP signup counters, shared by replicas."""
    _run_script(db, SCHEMA_V8)


SCHEMA_V9 = """
-- Send workers (`distrib send --worker`, PostgreSQL only): one row per live worker
-- process.  The rows a worker claims (email_deliveries.run = its run) are its own until
-- its lease ends; it renews the lease with every batch it claims.  A row whose claimer
-- has no live lease here was left by a process that stopped: another worker takes it.
CREATE TABLE send_workers (
    run         TEXT PRIMARY KEY,       -- the worker's Ledger.run, on its claimed rows
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started     TEXT NOT NULL,
    lease_until TEXT NOT NULL           -- ISO 8601 UTC; renewed with every batch claimed
) WITHOUT ROWID;
-- serves: the workers' claims (the rows still to send of one edition)
CREATE INDEX email_deliveries_open ON email_deliveries (edition_id, status, address)
    WHERE status IN ('pending', 'claimed', 'deferred');
"""


def _update_from_8_to_9(db: sqlite3.Connection) -> None:
    """Send workers: the table ``send_workers`` (their leases), the column
    ``email_deliveries.reclaims`` (how often a row was taken from a worker that stopped
    holding it) and the index ``email_deliveries_open``.  ``email_deliveries.status``
    gains ``pending``: a recipient queued for the workers, not yet claimed."""
    db.execute("ALTER TABLE email_deliveries ADD COLUMN reclaims INTEGER NOT NULL DEFAULT 0")
    _run_script(db, SCHEMA_V9)


def _update_from_9_to_10(db: sqlite3.Connection) -> None:
    """Table ``subscribers``: ``paused_at``, when the reader paused every edition from the
    preferences page (NULL: not paused).  A paused subscriber stays active (not
    suppressed) and receives nothing until they resume from the same page."""
    db.execute("ALTER TABLE subscribers ADD COLUMN paused_at TEXT")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _update_from_0_to_1,
    1: _update_from_1_to_2,
    2: _update_from_2_to_3,
    3: _update_from_3_to_4,
    4: _update_from_4_to_5,
    5: _update_from_5_to_6,
    6: _update_from_6_to_7,
    7: _update_from_7_to_8,
    8: _update_from_8_to_9,
    9: _update_from_9_to_10,
}
VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, path: Path, version: int) -> None:
    """Bring the schema from ``version`` to :data:`VERSION`, one transaction per step."""
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
            raise LedgerError(
                f"cannot migrate the ledger {path} to schema {version + 1}: {e}"
            ) from None
        version += 1
