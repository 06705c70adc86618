"""The null mailer: accepts every recipient and sends nothing.

For benchmarks and dry runs: it goes through the whole pipeline (each recipient's
bytes are built, so the cost of personalisation is counted) and reports each one
sent, without touching the network or the disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from ..adapters import Mailer, Report
from ..model import Outcome, Recipient
from ..schema import Opt, k_bool

if TYPE_CHECKING:
    from ..adapters import Context
    from ..render.message import PreparedMessage
    from ..schema import Section


class NullMailer(Mailer):
    """Builds every message and throws it away."""

    options: ClassVar[dict[str, Opt]] = {
        "build": Opt(k_bool, True, "build each recipient's message bytes (false: only report)"),
    }

    def __init__(self, options: Section, ctx: Context) -> None:
        super().__init__(options, ctx)
        self.messages = 0
        self.bytes = 0

    def deliver(
        self, message: PreparedMessage, recipients: Iterator[Recipient], report: Report
    ) -> None:
        build = True if self.opts is None else self.opts.get("build", True) is not False
        for recipient in recipients:
            if build:
                data, message_id = message.message_for(recipient)
                self.bytes += len(data)
            else:
                message_id = message.message_id(recipient)
            self.messages += 1
            report(recipient, Outcome.sent(message_id))

    def describe(self) -> str:
        return f"nowhere (null mailer: {self.messages} messages, {self.bytes} bytes built)"
