"""The key-value store: small values adapters keep between runs, and the baselines."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from .common import Part, iso, now, wrap_errors


class KeyValue(Part):
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
            (key, json.dumps(value, ensure_ascii=False), iso(now())),
        )

    @wrap_errors
    def kv_put_new(self, key: str, value: Any) -> Any:
        """Store ``value`` under ``key`` unless a value is there already; return the one
        kept.  Two processes making a value at once (two ``distrib serve`` replicas making
        the signing key) both end up with the first one stored."""
        self.db.execute(
            "INSERT INTO kv (key, value, updated) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, json.dumps(value, ensure_ascii=False), iso(now())),
        )
        return self.kv_get(key)

    def baseline(self, scope: str) -> datetime | None:
        """When a first-run baseline was taken for ``scope`` ("newsletter:digest",
        "channel:x-main"): posts first seen at or before it are never sent there."""
        value = self.kv_get(f"baseline:{scope}")
        return datetime.fromisoformat(value) if value else None

    def set_baseline(self, scope: str, when: datetime) -> None:
        self.kv_put(f"baseline:{scope}", iso(when))
