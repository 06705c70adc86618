"""The outbox mailer: one ``.eml`` file per recipient in a folder, nothing sent.

The default mailer: it needs no server or credentials, so the example config runs
offline, and the files open in any mail client.  Each file is written to a temporary
name and renamed into place (atomic on POSIX), so a run killed mid-write never leaves
half a message under the final name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..adapters import Mailer, Report
from ..config import Opt, k_path
from ..errors import DistribError
from ..model import Outcome, Recipient

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

_UNSAFE = re.compile(r"[^a-z0-9@._+-]+")


def safe_name(address: str) -> str:
    """A file-name-safe form of ``address`` (lower-cased; anything odd becomes "_")."""
    name = _UNSAFE.sub("_", address.strip().lower()).strip("._")
    return name[:200] or "recipient"


class OutboxMailer(Mailer):
    """Writes ``<edition id>-<address>.eml`` files into ``[email.outbox] dir``."""

    options: ClassVar[dict[str, Opt]] = {
        "dir": Opt(k_path, "outbox", "the folder the .eml files are written to"),
    }

    @property
    def folder(self) -> Path:
        value = self.opts.get("dir") if self.opts is not None else None
        path = Path(os.path.expanduser(str(value or "outbox")))
        if not path.is_absolute():
            path = self.ctx.settings.base_dir / path
        return path

    def path_for(self, edition_id: int, recipient: Recipient) -> Path:
        return self.folder / f"{edition_id}-{safe_name(recipient.email)}.eml"

    def deliver(
        self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report
    ) -> None:
        folder = self.folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DistribError(
                f"outbox: cannot create the folder {folder} ({e.strerror}); "
                f"set [email.outbox] dir to a writable folder"
            ) from None
        for recipient in recipients:
            path = self.path_for(message.edition_id, recipient)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                with open(tmp, "wb") as f:
                    f.write(message.for_recipient(recipient))
                os.replace(tmp, path)
            except OSError as e:
                try:
                    tmp.unlink()
                except OSError:
                    pass
                # A full disk or a permission problem affects every file: stop, but
                # report this recipient (deferred: it is retried by the next run).
                report(recipient, Outcome.deferred(f"cannot write {path}: {e.strerror}"))
                raise DistribError(
                    f"outbox: cannot write {path} ({e.strerror}); "
                    f"free some space or set [email.outbox] dir to a writable folder"
                ) from None
            report(recipient, Outcome.sent(message.message_id(recipient)))

    def describe(self) -> str:
        return f"to the folder {self.folder}"
