"""Subscribers in the ledger: addresses, CSV import/export, remove and unsubscribe."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from distrib import subscribers as subs
from distrib.ledger import Ledger


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Ada.Lovelace@Example.ORG ", "ada.lovelace@example.org"),
        ("a+news@mail.example.co.uk", "a+news@mail.example.co.uk"),
        ("o'neil@example.ie", "o'neil@example.ie"),
        ("reader@bücher.example", "reader@xn--bcher-kva.example"),
        ("reader@xn--bcher-kva.example", "reader@xn--bcher-kva.example"),
        ("олена@приклад.укр", "олена@xn--80aikifvh.xn--j1amh"),
        ("trailing@example.org.", "trailing@example.org"),
    ],
)
def test_normalise_address_accepts(text: str, expected: str) -> None:
    assert subs.normalise_address(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("no-at-sign.example.org", "no @"),
        ("two@@example.org", "more than one @"),
        ("@example.org", "nothing before the @"),
        ("a b@example.org", "space"),
        ("Ada <ada@example.org>", "space"),
        ("dots..twice@example.org", "not a valid mailbox name"),
        ("local@localhost", "no dot"),
        ("x@-bad.example", "not a valid host name"),
        ("x@example.123", "top-level domain"),
        ("x" * 65 + "@example.org", "64 bytes"),
    ],
)
def test_normalise_address_refuses_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        subs.normalise_address(text)


def test_import_reports_bad_rows_with_line_numbers_and_never_duplicates(
    ledger: Ledger, tmp_path: Path
) -> None:
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(
        "email,name\n"
        "ada@example.org,Ada Lovelace\n"
        "not-an-address,Nobody\n"
        "\n"
        "ADA@Example.org,Ada again\n"  # the same subscriber, another spelling
        '"grace@example.org","Hopper, Grace"\n'
        "bob@@example.org,Bob\n",
        encoding="utf-8",
    )
    report = subs.import_csv(ledger, csv_path)
    assert (report.added, report.already, report.bad_count) == (2, 1, 2)
    assert report.bad == [
        (3, "not-an-address", "no @"),
        (7, "bob@@example.org", "more than one @"),
    ]
    assert [(s.email, s.name, s.status) for s in subs.list_subscribers(ledger)] == [
        ("ada@example.org", "Ada Lovelace", "active"),
        ("grace@example.org", "Hopper, Grace", "active"),
    ]
    again = subs.import_csv(ledger, csv_path)
    assert (again.added, again.already) == (0, 3)
    assert sum(1 for _ in subs.list_subscribers(ledger)) == 2


def test_import_single_column_semicolons_bom_and_bytes(ledger: Ledger) -> None:
    single = "\ufeffzoe@example.org\nyann@example.org\n\n  xu@example.org  \n".encode()
    report = subs.import_csv(ledger, io.BytesIO(single))
    assert (report.added, report.bad) == (3, [])

    semicolons = io.StringIO(
        "Name;E-Mail\nMüller, Jörg;joerg@example.de\nLéa;lea@example.fr\nBroken;\n"
    )
    report = subs.import_csv(ledger, semicolons)
    assert report.added == 2
    assert report.bad == [(4, "", "empty")]
    assert subs.get(ledger, "joerg@example.de").name == "Müller, Jörg"  # type: ignore[union-attr]


def test_import_multiline_quoted_field_keeps_the_line_of_its_row(ledger: Ledger) -> None:
    text = 'email,name\n"ok@example.org","two\nlines"\nbad@,x\n'
    report = subs.import_csv(ledger, io.StringIO(text))
    assert report.added == 1
    assert report.bad == [(4, "bad@", "no domain after the @")]


def test_import_never_revives_a_suppressed_address(ledger: Ledger) -> None:
    assert subs.add(ledger, "gone@example.org")
    assert subs.remove(ledger, "gone@example.org")
    report = subs.import_csv(ledger, io.StringIO("email\ngone@example.org\nnew@example.org\n"))
    assert (report.added, report.already, report.suppressed) == (1, 1, 1)
    assert subs.get(ledger, "gone@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    assert ledger.is_suppressed("gone@example.org")


def test_dry_run_counts_exactly_and_writes_nothing(ledger: Ledger) -> None:
    subs.add(ledger, "known@example.org")
    report = subs.import_csv(
        ledger,
        io.StringIO("known@example.org\nfresh@example.org\nfresh@example.org\nnope\n"),
        dry_run=True,
    )
    assert (report.added, report.already, report.bad_count, report.dry_run) == (1, 2, 1, True)
    assert [s.email for s in subs.list_subscribers(ledger)] == ["known@example.org"]


def test_add_remove_unsubscribe(ledger: Ledger) -> None:
    assert subs.add(ledger, "Reader@Example.org", " Reader ")
    assert not subs.add(ledger, "reader@example.org")  # already known
    assert subs.remove(ledger, "READER@example.org")
    assert not subs.remove(ledger, "reader@example.org")  # already suppressed
    assert not subs.remove(ledger, "stranger@example.org")  # not a subscriber
    assert subs.get(ledger, "stranger@example.org") is None
    row = subs.get(ledger, "reader@example.org")
    assert row is not None and (row.name, row.status, row.reason) == (
        "Reader",
        "unsubscribed",
        "removed",
    )
    assert not subs.add(ledger, "reader@example.org")  # stays suppressed

    # unsubscribe works for any address, a config recipient too, and keeps its reason
    assert subs.unsubscribe(ledger, "Config.Recipient@example.org", reason="asked by phone")
    assert not subs.unsubscribe(ledger, "config.recipient@example.org")
    row = subs.get(ledger, "config.recipient@example.org")
    assert row is not None and (row.status, row.reason) == ("unsubscribed", "asked by phone")
    assert subs.counts(ledger) == {"active": 0, "unsubscribed": 2, "bounced": 0, "complained": 0}
    with pytest.raises(ValueError):
        subs.add(ledger, "not an address")


def test_list_by_status_streams_pages(ledger: Ledger) -> None:
    rows = "".join(f"reader{i:04d}@example.org\n" for i in range(2500))
    assert subs.import_csv(ledger, io.StringIO(rows)).added == 2500
    ledger.suppress("reader0007@example.org", "bounced", "550 5.1.1 no such user")
    active = list(subs.list_subscribers(ledger, "active"))
    assert len(active) == 2499 and active[0].email == "reader0000@example.org"
    assert [s.email for s in subs.list_subscribers(ledger, "bounced")] == ["reader0007@example.org"]
    assert sum(1 for _ in subs.list_subscribers(ledger)) == 2500
    with pytest.raises(ValueError, match="unknown status"):
        list(subs.list_subscribers(ledger, "gone"))


def test_export_reads_back(ledger: Ledger, tmp_path: Path) -> None:
    subs.add(ledger, "ada@example.org", "Ada, Countess")
    subs.add(ledger, "bob@example.org")
    subs.unsubscribe(ledger, "bob@example.org")
    out = tmp_path / "out.csv"
    assert subs.export_csv(ledger, out) == 2
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "email,name,status,reason,created,updated,left_newsletters"
    assert lines[1].startswith('ada@example.org,"Ada, Countess",active,,')
    buf = io.StringIO()
    assert subs.export_csv(ledger, buf, status="active") == 1

    from distrib.ledger import open_ledger

    with open_ledger(tmp_path / "other.sqlite") as other:
        report = subs.import_csv(other, io.StringIO(buf.getvalue()))
        assert report.added == 1 and subs.get(other, "ada@example.org").name == "Ada, Countess"  # type: ignore[union-attr]


def test_an_export_imported_into_a_new_ledger_keeps_its_suppression_list(
    ledger: Ledger, tmp_path: Path
) -> None:
    subs.add(ledger, "ada@example.org", "Ada")
    subs.add(ledger, "bob@example.org", "Bob")
    subs.remove(ledger, "bob@example.org")
    subs.unsubscribe(ledger, "cat@example.org", reason="550 no such user", status="bounced")
    out = tmp_path / "out.csv"
    subs.export_csv(ledger, out)

    from distrib.ledger import open_ledger

    with open_ledger(tmp_path / "moved.sqlite") as moved:
        report = subs.import_csv(moved, out)
        assert (report.added, report.marked_suppressed, report.bad_count) == (3, 2, 0)
        assert [(s.email, s.status, s.reason) for s in subs.list_subscribers(moved)] == [
            ("ada@example.org", "active", ""),
            ("bob@example.org", "unsubscribed", "removed"),
            ("cat@example.org", "bounced", "550 no such user"),
        ]
        assert subs.get(moved, "bob@example.org").name == "Bob"  # type: ignore[union-attr]
        # A known active address that the file says unsubscribed is suppressed; a
        # suppressed one is never revived by "active"; an unknown status is a bad row.
        subs.add(moved, "dan@example.org")
        again = subs.import_csv(
            moved,
            io.StringIO(
                "email,status\ndan@example.org,Unsubscribed\nbob@example.org,active\neve@example.org,pending\n"
            ),
        )
        assert (again.marked_suppressed, again.already, again.suppressed) == (1, 2, 1)
        assert again.bad == [
            (
                4,
                "eve@example.org",
                "unknown status 'pending': expected one of active, unsubscribed, bounced, complained",
            )
        ]
        assert moved.is_suppressed("dan@example.org") and moved.is_suppressed("bob@example.org")
        assert subs.get(moved, "eve@example.org") is None


def test_a_name_and_address_cell_is_read_like_email_recipients(ledger: Ledger) -> None:
    report = subs.import_csv(
        ledger,
        io.StringIO(
            'email,name\n"Carol Diaz <Carol@Example.net>",\n"Dan <dan@example.net>",Daniel\n"Doe, Jane",x\n'
        ),
    )
    assert report.added == 2 and [b[1] for b in report.bad] == ["Doe, Jane"]
    assert subs.get(ledger, "carol@example.net").name == "Carol Diaz"  # type: ignore[union-attr]
    assert subs.get(ledger, "dan@example.net").name == "Daniel"  # type: ignore[union-attr]


def test_add_remove_unsubscribe_take_an_address_as_a_mail_client_shows_it(ledger: Ledger) -> None:
    assert subs.add(ledger, "Hana Sato <Hana@Example.net>")
    assert subs.get(ledger, "hana@example.net").name == "Hana Sato"  # type: ignore[union-attr]
    assert subs.add(ledger, "Ivo <ivo@example.net>", "Ivo Horvat")
    assert subs.get(ledger, "ivo@example.net").name == "Ivo Horvat"  # type: ignore[union-attr]
    assert subs.remove(ledger, "Hana Sato <hana@example.net>")
    assert subs.unsubscribe(ledger, "Ivo <IVO@example.net>", status="bounced")
    assert ledger.is_suppressed("hana@example.net") and ledger.is_suppressed("ivo@example.net")
    with pytest.raises(ValueError, match="not allowed"):
        subs.add(ledger, "Hana Sato hana@example.net")


def test_excel_sep_hint_line(ledger: Ledger) -> None:
    report = subs.import_csv(
        ledger, io.StringIO("sep=;\nE-mail;Name\nana@example.pt;Silva, Ana\nbad;x\n")
    )
    assert report.added == 1 and report.bad == [(4, "bad", "no @")]
    assert subs.get(ledger, "ana@example.pt").name == "Silva, Ana"  # type: ignore[union-attr]


def test_normalise_is_idempotent_and_case_blind() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=100, deadline=None)
    @given(st.emails())
    def check(address: str) -> None:
        try:
            once = subs.normalise_address(address)
        except ValueError:
            return  # hypothesis also makes legal-but-refused forms (quoted local parts)
        assert subs.normalise_address(once) == once
        assert subs.normalise_address(address.upper()) == once or not address.isascii()

    check()
