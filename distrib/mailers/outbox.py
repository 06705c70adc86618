"""The outbox mailer: one ``.eml`` file per recipient in a folder, nothing sent.

The default mailer: it needs no server or credentials, so the example config runs
offline, and the files open in any mail client.  Each file is written to a temporary
name and renamed into place (atomic on POSIX), so a run killed mid-write never leaves
half a message under the final name.

Files and the folder distrib creates are readable by their owner only (0600 / 0700):
each file holds an address and its signed unsubscribe link.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..adapters import Mailer, Report
from ..config import Opt, k_path
from ..errors import DistribError
from ..model import Outcome, Recipient
from ..paths import make_private_dir, private_opener

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

_MAX_NAME_BYTES = 200  # well within the 255 bytes most file systems allow


def _safe_char(ch: str) -> str:
    return ch if ch.isalnum() or ch in "@._+-" else "_"


def safe_name(address: str) -> str:
    """A file-name-safe form of ``address``, one per address: lower-cased, letters and
    digits of any script kept; when anything else had to change (a "/", a space, a
    cut), ``~`` and a hash of the address follow, so two addresses never share a name
    (``a/b@x`` is ``a_b@x~…``, never ``a_b@x``, whose name has no ``~``)."""
    address = address.strip().lower()
    name = "".join(_safe_char(ch) for ch in address).strip("._")
    cut = name.encode("utf-8")[:_MAX_NAME_BYTES].decode("utf-8", "ignore")
    if cut == address and cut:
        return cut
    digest = hashlib.blake2b(address.encode("utf-8"), digest_size=8).hexdigest()
    return f"{cut or 'recipient'}~{digest}"


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
            make_private_dir(folder)
        except OSError as e:
            raise DistribError(
                f"outbox: cannot create the folder {folder} ({e.strerror}); "
                f"set [email.outbox] dir to a writable folder"
            ) from None
        for recipient in recipients:
            path = self.path_for(message.edition_id, recipient)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                with open(tmp, "wb", opener=private_opener) as f:
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
