"""`distrib subscribers forget`: the person's data goes, a keyed hash stays, and neither
an import nor `subscribers add` brings them back; their own confirmation can."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from distrib import subscribers as subs
from distrib.cli import cli
from distrib.ledger import open_ledger
from tests.conftest import SmtpServer
from tests.signup.conftest import SECRET, _config


def test_forget_erases_and_blocks_reimport(tmp_path: Path, smtp_server: SmtpServer, monkeypatch):
    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    config = _config(tmp_path, smtp_server)
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        subs.add(led, "ana@example.org", "Ana Silva")
        led.record_consent("ana@example.org", "signup", "cli")
        led.queue_signup("ana@example.org", "Ana Silva", [])
    out = CliRunner().invoke(
        cli, ["subscribers", "forget", "Ana@Example.org", "--config", str(config)]
    )
    assert out.exit_code == 0, out.output
    assert "ana@example.org erased" in out.output
    csv = tmp_path / "readers.csv"
    csv.write_text("email,name\nana@example.org,Ana Silva\nben@example.org,Ben\n", encoding="utf-8")
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        assert led.get_subscriber("ana@example.org") is None
        assert led.consent_record("ana@example.org") == []
        assert led.outbox_pending() == 0
        raw = led.db.execute("SELECT count(*) FROM forgotten").fetchone()[0]
        assert raw == 1
        assert not subs.add(led, "ana@example.org")
        subs.import_csv(led, csv)
        assert led.get_subscriber("ana@example.org") is None
        assert led.get_subscriber("ben@example.org") is not None
        assert led.is_suppressed("ana@example.org")
    # her own confirmation of a new signup is new consent
    with open_ledger(tmp_path / "distrib.sqlite") as led:
        assert led.confirm_subscriber("ana@example.org", "", [], ["digest"])
        assert led.get_subscriber("ana@example.org")["status"] == "active"
        assert not led.is_suppressed("ana@example.org")


def test_forget_refuses_a_non_address(tmp_path: Path, smtp_server: SmtpServer, monkeypatch):
    monkeypatch.setenv("DISTRIB_SIGNUP_SECRET", SECRET)
    config = _config(tmp_path, smtp_server)
    out = CliRunner().invoke(
        cli, ["subscribers", "forget", "not an address", "--config", str(config)]
    )
    assert out.exit_code == 2 and "not an email address" in out.output
