"""OutboxMailer and NullMailer: real files in tmp_path."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from distrib.adapters import Context
from distrib.config import Section
from distrib.errors import DistribError
from distrib.mailers.null import NullMailer
from distrib.mailers.outbox import OutboxMailer, safe_name
from distrib.model import DeliveryStatus, Edition, Outcome, Recipient
from distrib.render.message import prepare_message
from tests.mailers.conftest import KEY


def test_outbox_writes_one_file_per_recipient(
    ctx: Context, edition: Edition, tmp_path: Path
) -> None:
    prepared = prepare_message(ctx.settings, edition, key=KEY)
    recipients = [Recipient("ann@example.com", "Ann"), Recipient("Bob/../x@example.com")]
    reports: list[tuple[Recipient, Outcome]] = []
    mailer = OutboxMailer(Section({"dir": "out"}, "email.outbox"), ctx)
    with mailer:
        mailer.deliver(prepared, iter(recipients), lambda r, o: reports.append((r, o)))
    folder = tmp_path / "out"
    assert mailer.describe() == f"to the folder {folder}"
    files = sorted(p.name for p in folder.iterdir())
    assert files[0] == "3-ann@example.com.eml"
    assert files[1].startswith("3-bob_.._x@example.com~") and files[1].endswith(".eml")
    assert [r for r, _ in reports] == recipients
    assert all(o.status is DeliveryStatus.SENT for _, o in reports)
    assert reports[0][1].remote_id == prepared.message_id(recipients[0])
    raw = (folder / files[0]).read_bytes()
    assert raw == prepared.for_recipient(recipients[0])
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"


def test_outbox_default_dir_is_beside_the_config(ctx: Context, tmp_path: Path) -> None:
    mailer = OutboxMailer(Section({"dir": None}, "email.outbox"), ctx)
    assert mailer.folder == tmp_path / "outbox"


def test_outbox_unwritable_folder(ctx: Context, edition: Edition, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    mailer = OutboxMailer(Section({"dir": str(blocker / "sub")}, "email.outbox"), ctx)
    prepared = prepare_message(ctx.settings, edition, key=KEY)
    with pytest.raises(DistribError, match="set \\[email.outbox\\] dir"):
        mailer.deliver(prepared, iter([Recipient("a@example.com")]), lambda r, o: None)


def test_safe_name() -> None:
    assert safe_name(" Ann.Lee+x@Example.COM ") == "ann.lee+x@example.com"
    assert safe_name("../../etc/passwd").startswith("etc_passwd~")
    assert "/" not in safe_name("a/b@c")


def test_null_mailer_builds_and_reports(ctx: Context, edition: Edition) -> None:
    prepared = prepare_message(ctx.settings, edition, key=KEY)
    reports: list[Outcome] = []
    mailer = NullMailer(Section({}, "email.null"), ctx)
    recipients = (Recipient(f"r{i}@example.com") for i in range(50))
    mailer.deliver(prepared, recipients, lambda r, o: reports.append(o))
    assert len(reports) == 50 and all(o.status is DeliveryStatus.SENT for o in reports)
    assert mailer.bytes > 50 * 10_000


def test_outbox_names_are_unique_per_recipient_and_keep_unicode(
    ctx: Context, edition: Edition, tmp_path: Path
) -> None:
    """Issue 9: ``a/b@x`` and ``a_b@x`` were one file (10 delivered, 9 written) and
    ``üser@`` became ``ser@``."""
    prepared = prepare_message(ctx.settings, edition, key=KEY)
    addresses = [
        "a/b@x.example",
        "a_b@x.example",
        "a b@x.example",
        "a\\b@x.example",
        "üser@example.com",
        "ser@example.com",
        "_ser@example.com",
        ".ser@example.com",
        "δοκιμή@example.gr",
        "x" * 300 + "@example.com",
    ]
    mailer = OutboxMailer(Section({"dir": "out"}, "email.outbox"), ctx)
    reports: list[Outcome] = []
    mailer.deliver(prepared, iter(Recipient(a) for a in addresses), lambda r, o: reports.append(o))
    assert len(reports) == 10 and all(o.status is DeliveryStatus.SENT for o in reports)
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(files) == 10
    assert "3-üser@example.com.eml" in files and "3-ser@example.com.eml" in files
    assert "3-a_b@x.example.eml" in files and "3-δοκιμή@example.gr.eml" in files
    assert all(len(name.encode("utf-8")) < 255 for name in files)
    for a in addresses:  # each file is its recipient's message
        raw = mailer.path_for(3, Recipient(a)).read_bytes()
        assert raw == prepared.for_recipient(Recipient(a))


def test_outbox_files_are_private(ctx: Context, edition: Edition, tmp_path: Path) -> None:
    """Each .eml holds an address and its unsubscribe token: 0600 in a 0700 folder."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        prepared = prepare_message(ctx.settings, edition, key=KEY)
        mailer = OutboxMailer(Section({"dir": "out/mail"}, "email.outbox"), ctx)
        mailer.deliver(prepared, iter([Recipient("ann@example.com")]), lambda r, o: None)
    finally:
        os.umask(old)
    folder = tmp_path / "out" / "mail"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    [eml] = folder.iterdir()
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600
