"""prepare_message / PreparedMessage: the bytes parse back to exactly what was rendered."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from distrib.model import PLACEHOLDER_EMAIL, PLACEHOLDER_UNSUBSCRIBE_URL, Recipient
from distrib.render.message import prepare_message, qp_encode
from distrib.unsubscribe import read_token
from tests.mailers.conftest import KEY, make_edition, make_settings

DATE = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def lines_ok(raw: bytes) -> None:
    """Every line ends in CRLF; body lines are <= 76 chars and never start with a dot."""
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in body.split(b"\r\n"):
        assert len(line) <= 76, line
        assert not line.startswith(b"."), line
        assert line.isascii()
    for line in head.split(b"\r\n"):
        assert not line.startswith(b".")


def check_parts(msg: EmailMessage, text: str, html: str) -> None:
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
    assert parts[0].get_content().replace("\r\n", "\n") == text
    assert parts[1].get_content().replace("\r\n", "\n") == html
    assert not msg.defects and not any(p.defects for p in parts)


@pytest.mark.parametrize(
    "subject",
    [
        "The Lantern Gazette: Harbour lights return and 4 more",
        "灯台ガゼット：港の灯りが戻る、ほか四本の記事をお届けします。長い件名は折り返されます",
        "جريدة الفانوس: عودة أضواء الميناء",
        "🎉 Party on the pier 🏖️ 👩‍👩‍👧 family day — ✨",
    ],
)
def test_parts_and_headers(tmp_path: Path, subject: str) -> None:
    settings = make_settings(tmp_path, reply_to="Desk <desk@gazette.example.org>")
    edition = make_edition(subject)
    prepared = prepare_message(settings, edition, key=KEY, date=DATE)
    r = Recipient("Reader.One+news@Example.com", "Zoë Ünal")
    raw = prepared.for_recipient(r)
    lines_ok(raw)
    msg = parse(raw)
    assert msg["Subject"] == subject
    assert msg["From"].addresses[0].addr_spec == "news@gazette.example.org"
    assert msg["From"].addresses[0].display_name == "The Lantern"
    assert msg["To"].addresses[0].display_name == "Zoë Ünal"
    assert msg["To"].addresses[0].addr_spec == "Reader.One+news@Example.com"
    assert msg["Reply-To"].addresses[0].addr_spec == "desk@gazette.example.org"
    assert msg["Date"].datetime == DATE
    assert msg["MIME-Version"] == "1.0"
    assert msg["Precedence"] == "bulk"
    assert msg["X-Distrib-Edition"] == "3"
    assert msg["List-Id"] == "The Lantern Gazette <digest.gazette.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] is None
    # every header once
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        assert len(msg.get_all(name)) == 1, name

    url = prepared.unsubscribe_url(r)
    token = url.rsplit("=", 1)[1]
    # opaque: the address is not in the URL; the token names the edition's newsletter
    assert "reader.one" not in url.lower() and "example.com" not in url
    found = read_token(KEY, token)
    assert found is not None
    assert (found.address, found.newsletter) == ("reader.one+news@example.com", "digest")
    assert msg["List-Unsubscribe"] == f"<{url}>"

    mid = msg["Message-ID"]
    assert mid == prepared.message_id(r)
    assert mid.startswith("<distrib.3.") and mid.endswith("@gazette.example.org>")

    text = edition.text.replace(PLACEHOLDER_EMAIL, r.email).replace(
        PLACEHOLDER_UNSUBSCRIBE_URL, url
    )
    html = edition.html.replace(PLACEHOLDER_EMAIL, r.email).replace(
        PLACEHOLDER_UNSUBSCRIBE_URL, url
    )
    check_parts(msg, text, html)
    assert prepared.text_for(r) == text
    assert prepared.html_for(r) == html


def test_long_ascii_subject_is_folded(tmp_path: Path) -> None:
    subject = "A very long subject " * 8 + "end"
    raw = prepare_message(make_settings(tmp_path), make_edition(subject), key=KEY).for_recipient(
        Recipient("a@example.com")
    )
    head = raw.partition(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"List-Unsubscribe" not in line)
    assert parse(raw)["Subject"] == subject.strip()


def test_unfoldable_subject_is_encoded(tmp_path: Path) -> None:
    subject = "x" * 2000 + " end"
    raw = prepare_message(make_settings(tmp_path), make_edition(subject), key=KEY).for_recipient(
        Recipient("a@example.com")
    )
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert parse(raw)["Subject"] == subject


def test_hostile_values_cannot_add_headers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    edition = make_edition("Hello\r\nBcc: victim@evil.example\r\n\r\n<script>x</script>")
    prepared = prepare_message(settings, edition, key=KEY)
    r = Recipient("a@example.com", 'Eve\r\nBcc: other@evil.example "quoted"')
    msg = parse(prepared.for_recipient(r))
    assert msg["Bcc"] is None
    assert "\n" not in msg["Subject"] and msg["Subject"].startswith("Hello Bcc: victim")
    assert msg["To"].addresses[0].addr_spec == "a@example.com"
    assert msg["To"].addresses[0].display_name == 'Eve Bcc: other@evil.example "quoted"'
    assert len(msg["To"].addresses) == 1


def test_value_escaping_and_wrapping(tmp_path: Path) -> None:
    # An URL with & and = (escaped in HTML, =3D in QP), long enough to wrap.
    settings = make_settings(
        tmp_path,
        unsubscribe_url="https://gazette.example.org/u?list=digest&token={token}&email={email}",
        unsubscribe_mailto="Unsub <leave@gazette.example.org>",
    )
    text = f"{PLACEHOLDER_UNSUBSCRIBE_URL}{PLACEHOLDER_EMAIL}\n.{PLACEHOLDER_EMAIL}"
    html = f'<a href="{PLACEHOLDER_UNSUBSCRIBE_URL}">x</a>{PLACEHOLDER_UNSUBSCRIBE_URL}'
    prepared = prepare_message(settings, make_edition(text=text, html=html), key=KEY)
    r = Recipient("o'hara.long.name.for.wrapping.tests@sub.domain.example.com", "")
    raw = prepared.for_recipient(r)
    lines_ok(raw)
    msg = parse(raw)
    url = prepared.unsubscribe_url(r)
    assert "&email=o%27hara.long" in url and len(url) > 76
    assert msg["List-Unsubscribe"] == (
        f"<{url}>, <mailto:leave@gazette.example.org?subject=unsubscribe>"
    )
    assert msg["To"] == r.email
    escaped = url.replace("&", "&amp;")
    check_parts(msg, f"{url}{r.email}\n.{r.email}", f'<a href="{escaped}">x</a>{escaped}')


def test_no_https_url_means_no_one_click(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, unsubscribe_url=None, unsubscribe_mailto="leave@gazette.example.org"
    )
    prepared = prepare_message(settings, make_edition(), key=KEY)
    r = Recipient("a@example.com")
    msg = parse(prepared.for_recipient(r))
    assert msg["List-Unsubscribe"] == "<mailto:leave@gazette.example.org?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] is None
    # the body link falls back to the mailto
    assert "mailto:leave@gazette.example.org?subject=unsubscribe" in prepared.text_for(r)


def test_message_id_is_stable_per_edition_and_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    a = prepare_message(settings, make_edition(), key=KEY)
    b = prepare_message(settings, make_edition(), key=KEY)
    other = prepare_message(settings, make_edition(edition_id=4), key=KEY)
    r = Recipient("a@example.com")
    assert a.message_id(r) == b.message_id(r) == a.message_id(Recipient("A@Example.com "))
    assert a.message_id(r) != a.message_id(Recipient("b@example.com"))
    assert a.message_id(r) != other.message_id(r)


def test_idn_domain_and_preview(tmp_path: Path) -> None:
    prepared = prepare_message(make_settings(tmp_path), make_edition(), key=KEY)
    msg = parse(prepared.for_recipient(Recipient("jörg@bücher.example", "Jörg")))
    assert msg["To"].addresses[0].domain == "xn--bcher-kva.example"
    preview = parse(prepared.preview_bytes())
    assert preview["To"].addresses[0].addr_spec == "reader@example.com"
    assert prepared.envelope_from == "news@gazette.example.org"
    assert prepared.edition_id == 3


def test_qp_encoder_round_trips() -> None:
    import quopri

    samples = [
        "",
        "plain",
        "trailing space \nand tab\t\n",
        "." * 200,
        "= == ===\n" * 3,
        "ünïcödé " * 40,
        "🎉" * 50,
        "From the start\nFrom: header-ish",
        "a\r\nb\rc\n",
    ]
    for s in samples:
        enc = qp_encode(s)
        for line in enc.split("\r\n"):
            assert len(line) <= 76 and not line.startswith(".")
            assert not line.startswith("From ")
        expected = s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
        assert quopri.decodestring(enc.encode()).decode("utf-8") == expected
