"""DKIM signatures, verified by an independent verifier (dkimpy) on messages received by a
real SMTP server and written by the outbox mailer."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from distrib.dkim import generate_key, load_key
from tests.conftest import SmtpServer, run_distrib

dkim = pytest.importorskip("dkim", reason="pip install dkimpy pynacl (in the test extras)")
pytest.importorskip("nacl", reason="pip install pynacl (dkimpy needs it for Ed25519)")

RSA_PEM = generate_key()
ED_PEM = generate_key("ed25519-sha256")
RSA = load_key(RSA_PEM, "rsa", "test")
ED = load_key(ED_PEM, "ed", "test")
RECORDS = {
    b"rsa._domainkey.test.example.": RSA.record().encode(),
    b"ed._domainkey.test.example.": ED.record().encode(),
}
#: A 512-bit RSA key (cryptography will not make one; receivers refuse them, RFC 8301).
SMALL_RSA_PEM = """-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAuga/79Ck6odMkhxU
kfGAdFhulNAEv5suoUQACbMEntGMASLyhvz2ZNA1oTCDN63v7FxcHUdRkylzBHa+
ASmZDQIDAQABAkAvEWIjBYGUraMcHPrw6k/8IBvqny90Y4lK2G/CBH+YxzEfiWbf
kpnNKKZOzy0ty3CHiNiVDj7QP91hMWyX3aeBAiEA9PvJlKXd/FCFpVooj/qE7oms
65NTipoE3G/nA0dKmp0CIQDCZEGln0TPiOAT2iLn5GEyP55sti+eXM2NVPFVnYW1
MQIhAK6zK0Icsluu1E9hJtHdtZQhi7WGnymUweisyBGXckUlAiArHaGR4qmYfnt0
68UiOf1077dr1Vzqexr8ZgLBQpcNgQIhANLK+/qjpx8NBN4rKaBpnRp3AWC/yIHf
wOXMpXKAjOQp
-----END PRIVATE KEY-----
"""
REQUIRED = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
}


def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
    return RECORDS.get(name, b"")


def verify_all(data: bytes) -> list[bool]:
    count = len(re.findall(rb"(?m)^DKIM-Signature:", data))
    return [dkim.DKIM(data).verify(idx=i, dnsfunc=dnsfunc) for i in range(count)]


def signed_config(make_config, tmp_path: Path, mailer: str, extra: str = "") -> Path:
    (tmp_path / "rsa.pem").write_bytes(RSA_PEM)
    (tmp_path / "ed.pem").write_bytes(ED_PEM)
    recipients = (
        '["ana@example.com", "Bo Li <bo@example.net>", "chen@example.org", "Zoë <zoe@example.org>"]'
    )
    return make_config(
        email=f"""
[email]
mailer = "{mailer}"
from = "Test News <news@test.example>"
recipients = {recipients}
unsubscribe_url = "https://test.example/unsubscribe?token={{token}}"
unsubscribe_mailto = "unsubscribe@test.example"

[email.dkim]
selector = "rsa"
key_file = "rsa.pem"
ed25519_selector = "ed"
ed25519_key_file = "ed.pem"
{extra}
"""
    )


def test_every_message_over_smtp_verifies_with_both_signatures(
    make_config, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    path = signed_config(
        make_config,
        tmp_path,
        "smtp",
        f'\n[email.smtp]\nhost = "{smtp_server.host}"\nport = {smtp_server.port}\nsecurity = "none"\n',
    )
    proc = run_distrib("send", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert len(smtp_server.received) == 4
    for got in smtp_server.received:
        assert verify_all(got.data) == [True, True]
        sigs = got.message.get_all("DKIM-Signature")
        algorithms = sorted(re.search(r"a=([\w-]+)", s).group(1) for s in sigs)
        assert algorithms == ["ed25519-sha256", "rsa-sha256"]
        signed = set(re.search(r"h=([^;]+)", re.sub(r"\s", "", sigs[0])).group(1).split(":"))
        assert REQUIRED <= signed
        assert "d=test.example" in sigs[0]
        assert got.message["Feedback-ID"].endswith(":digest:digest:test.example")


def test_outbox_files_verify_and_tampering_breaks_them(make_config, tmp_path: Path) -> None:
    path = signed_config(make_config, tmp_path, "outbox")
    proc = run_distrib("send", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 4
    data = files[0].read_bytes()
    assert verify_all(data) == [True, True]
    # A one-click header added in transit, an edited link, a changed subject: each fails.
    added = data.replace(
        b"\r\nMIME-Version:",
        b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version:",
        1,
    )
    edited = data.replace(b"unsubscribe?token=", b"unsubscribe?token=x", 1)
    subject = re.sub(rb"\r\nSubject: ", b"\r\nSubject: Re: ", data, count=1)
    for bad in (added, edited, subject):
        assert bad != data
        assert verify_all(bad) == [False, False]


def test_a_recipient_value_that_looks_like_a_header_cannot_break_the_signature(
    make_config, tmp_path: Path
) -> None:
    path = signed_config(make_config, tmp_path, "outbox")
    text = path.read_text().replace(
        '"chen@example.org"', '"Chen\\u0085 Evil: x <chen@example.org>"'
    )
    path.write_text(text)
    proc = run_distrib("send", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    for f in (tmp_path / "outbox").glob("*.eml"):
        assert verify_all(f.read_bytes()) == [True, True], f.name


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('selector = "rsa"\nkey_file = "missing.pem"', "email.dkim.key_file: cannot read"),
        ('selector = "rsa"\nkey_file = "junk.pem"', "email.dkim.key_file: not a PEM private key"),
        ('selector = "rsa"\nkey_file = "small.pem"', "512 bits is refused by receivers"),
        ('selector = "rsa"\nkey_env = "DISTRIB_TEST_NO_SUCH_KEY"', "DISTRIB_TEST_NO_SUCH_KEY"),
        ('selector = "rsa"', "neither key_file nor key_env"),
        ('ed25519_selector = "ed"\ned25519_key_file = "rsa.pem"', "expected an Ed25519 key"),
    ],
)
def test_a_bad_key_is_one_line_and_exit_2(
    make_config, tmp_path: Path, table: str, says: str
) -> None:
    (tmp_path / "rsa.pem").write_bytes(RSA_PEM)
    (tmp_path / "junk.pem").write_text("not a key\n")
    (tmp_path / "small.pem").write_text(SMALL_RSA_PEM)
    path = make_config(f"\n[email.dkim]\n{table}\n")
    for command in ("check", "send"):
        proc = run_distrib(command, "--config", str(path))
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert says in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outbox").exists()


def test_a_key_from_the_environment_with_escaped_newlines(make_config, tmp_path: Path) -> None:
    path = make_config('\n[email.dkim]\nselector = "ed"\nkey_env = "DKIM_KEY"\n')
    env = {"DKIM_KEY": ED_PEM.decode().replace("\n", "\\n")}
    proc = run_distrib("send", "--config", str(path), env=env)
    assert proc.returncode == 0, proc.stderr
    for f in (tmp_path / "outbox").glob("*.eml"):
        assert verify_all(f.read_bytes()) == [True]


@pytest.mark.parametrize("flag", [[], ["--ed25519"]])
def test_keygen_writes_a_private_file_and_the_record(tmp_path: Path, flag: list[str]) -> None:
    out = tmp_path / "keys" / "dkim.pem"
    proc = run_distrib("dkim-keygen", "--out", str(out), "--domain", "news.example.org", *flag)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    key = load_key(out.read_bytes(), "distrib", "test")
    record = "".join(re.findall(r'"([^"]*)"', proc.stdout))
    assert record == key.record()
    assert "distrib._domainkey.news.example.org TXT" in proc.stdout
    assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', proc.stdout))
    again = run_distrib("dkim-keygen", "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.parametrize(
    "body", [b"", b"x", b"x\r\n", b"x\r\n\r\n\r\n", b"\r\n\r\n", b"a\r\n\r\nb", None], ids=repr
)
def test_body_shapes_and_folded_repeated_headers_verify(body: bytes | None) -> None:
    from distrib.dkim import DkimSigner

    head = (
        b"From: News <news@test.example>\r\nTo: a@example.com\r\nTo: b@example.com\r\n"
        b"Subject: a  long\r\n\t folded   subject \r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
    )
    message = head if body is None else head + b"\r\n" + body
    signed = DkimSigner("Test.Example", [RSA, ED]).sign(message)
    assert signed.endswith(message)
    assert verify_all(signed) == [True, True]
    assert all(
        len(line) <= 78 for line in signed.split(b"\r\n") if line.startswith((b"DKIM", b" "))
    )


def test_keygen_takes_domain_and_selector_from_the_config(make_config, tmp_path: Path) -> None:
    path = make_config('\n[email.dkim]\nselector = "s2026"\nkey_file = "dkim.pem"\n')
    proc = run_distrib(
        "dkim-keygen", "--out", str(tmp_path / "dkim.pem"), "--config", str(path), "-q"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("s2026._domainkey.test.example TXT ")
    check = run_distrib("check", "--no-domain", "--config", str(path))
    assert check.returncode == 0, check.stderr
    assert "signed with DKIM, rsa-sha256 under s2026._domainkey.test.example" in check.stdout
