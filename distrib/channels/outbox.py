"""The outbox channel: each share post written as a JSON file, for review or other tools.

Offline and credential-free: the channel of the bundled example config.  One file per
(post, channel), named from the share key, written atomically (a temporary file in the
same folder, then ``os.replace``), so a re-run after a kill rewrites the same file instead
of adding a second one, and a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from ..errors import ChannelUnavailable
from ..model import Outcome, Post, Snippet
from ..paths import make_private_dir
from ..render.length import mastodon_length
from ..render.snippets import facets_for
from ..schema import Opt, k_path, k_positive
from .base import ShareChannel


class OutboxChannel(ShareChannel):
    """Writes share posts to ``dir`` as ``<slug>-<key>.json``."""

    network: ClassVar[str] = "outbox"
    options: ClassVar[dict[str, Opt]] = {
        "dir": Opt(
            k_path, None, "the folder of the share files; default outbox/shares beside the config"
        ),
        "limit": Opt(
            k_positive, 500, "the most characters of one share post (counted as Mastodon does)"
        ),
    }

    @property
    def folder(self) -> Path:
        d = self.opt("dir")
        return Path(d) if d else self.ctx.settings.base_dir / "outbox" / "shares"

    def counter(self) -> Callable[[str], int]:
        return mastodon_length

    def limit(self) -> int:
        return int(self.opt("limit", 500))

    def path_for(self, snippet: Snippet, post: Post, key: str) -> Path:
        # Named from the post's key (stable across edits of its title) and the share key.
        tail = post.key.rstrip("/").rsplit("/", 1)[-1]
        slug = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")[:40] or "post"
        return self.folder / f"{self.name}-{slug}-{key[:16]}.json"

    def publish(self, snippet: Snippet, post: Post, key: str) -> Outcome:
        path = self.path_for(snippet, post, key)
        record = {
            "channel": self.name,
            "post": post.key,
            "url": post.url,
            "key": key,
            "text": snippet.text,
            "link": snippet.link,
            "length": snippet.length,
            "limit": snippet.limit,
            "hashtags": list(snippet.hashtags),
            "facets": [
                {"byteStart": f.byte_start, "byteEnd": f.byte_end, "type": f.kind, "value": f.value}
                for f in facets_for(snippet.text)
            ],
            "image": {"url": snippet.image.url, "alt": snippet.image.alt}
            if snippet.image
            else None,
        }
        try:
            make_private_dir(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(record, f, ensure_ascii=False, indent=2)
                    f.write("\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as e:
            # The folder, not the post, is at fault: the share stays owed for the run
            # after the folder is fixed.
            raise ChannelUnavailable(
                f"channel {self.name}: cannot write {path}: {e.strerror}; "
                "check the channel's dir and its permissions (the shares wait for the next run)"
            ) from None
        return Outcome.sent(remote_id=str(path))

    def reconcile(self, snippet: Snippet, post: Post, key: str) -> Outcome | None:
        path = self.path_for(snippet, post, key)
        return Outcome.sent(remote_id=str(path)) if path.exists() else None

    def describe(self) -> str:
        return f"to {self.folder}"
