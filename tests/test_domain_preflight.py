"""`distrib check --domain` against a real DNS server on 127.0.0.1 (dnslib), one zone per
verdict: a domain that passes every rule, one that fails each rule, time-outs, SERVFAIL."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrib.dkim import generate_key, load_key
from distrib.preflight import organizational_domain
from tests.conftest import run_distrib
from tests.dnsserver import dns_server

pytest.importorskip("dnslib", reason="pip install dnslib (in the test extras)")

KEY_PEM = generate_key()
KEY = load_key(KEY_PEM, "sel", "test")
OTHER = load_key(generate_key(), "sel", "test")


def _spf_chain(domain: str, n: int) -> dict[tuple[str, str], list[str]]:
    """An SPF record whose includes need ``n`` look-ups."""
    out: dict[tuple[str, str], list[str]] = {}
    for i in range(n):
        here = domain if i == 0 else f"i{i}.{domain}"
        out[(here, "TXT")] = [f'"v=spf1 include:i{i + 1}.{domain} -all"']
    out[(f"i{n}.{domain}", "TXT")] = ['"v=spf1 ip4:192.0.2.10 -all"']
    return out


def _txt(value: str) -> str:
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def good_domain(domain: str, ip: str = "192.0.2.10", key=KEY) -> dict[tuple[str, str], list[str]]:
    rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"
    return {
        (domain, "TXT"): [f'"v=spf1 include:_spf.{domain} -all"'],
        (f"_spf.{domain}", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"'],
        (f"mail.{domain}", "A"): [ip],
        (rev, "PTR"): [f"mail.{domain}."],
        (f"sel._domainkey.{domain}", "TXT"): [_txt(key.record())],
        (f"_dmarc.{domain}", "TXT"): ['"v=DMARC1; p=quarantine; adkim=s"'],
        (domain, "MX"): [f"10 mx.{domain}."],
    }


def config(
    make_config,
    tmp_path: Path,
    nameserver: str,
    domain: str,
    *,
    host: str | None = None,
    dkim: bool = True,
) -> Path:
    (tmp_path / "dkim.pem").write_bytes(KEY_PEM)
    dkim_table = '[email.dkim]\nselector = "sel"\nkey_file = "dkim.pem"\n' if dkim else ""
    email = f"""
[email]
mailer = "smtp"
from = "News <news@{domain}>"
recipients = ["a@example.com"]
unsubscribe_url = "https://{domain}/unsubscribe?token={{token}}"

[email.smtp]
host = "{host or f"mail.{domain}"}"
port = 2525

{dkim_table}
[check]
nameservers = ["{nameserver}"]
dns_timeout = 1
"""
    return make_config(email=email)


def lines(proc) -> dict[str, str]:
    out = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.removeprefix("distrib: ")
        rule = line.split(":", 1)[0]
        if rule in ("SPF", "DKIM", "DMARC", "MX", "rDNS"):
            out.setdefault(rule, line)
    return out


def test_a_domain_that_passes_every_rule(make_config, tmp_path: Path) -> None:
    with dns_server(good_domain("pass.test")) as ns:
        proc = run_distrib("check", "--config", str(config(make_config, tmp_path, ns, "pass.test")))
    assert proc.returncode == 0, proc.stderr
    got = lines(proc)
    assert set(got) == {"SPF", "DKIM", "DMARC", "MX", "rDNS"}
    for rule, line in got.items():
        assert f"{rule}: pass:" in line, line
    assert "DKIM d=pass.test" in got["DMARC"] and "SPF pass.test" in got["DMARC"]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("rule", "change", "says", "publish"),
    [
        (
            "SPF",
            {("x.test", "TXT"): []},
            "has no SPF record",
            'x.test TXT "v=spf1 ip4:192.0.2.10 ~all"',
        ),
        (
            "SPF",
            {("_spf.x.test", "TXT"): ['"v=spf1 ip4:198.51.100.0/24 -all"']},
            "does not authorise the SMTP host",
            "include:_spf.x.test",
        ),
        ("SPF", {("x.test", "TXT"): ['"v=spf1 -all"', '"v=spf1 a -all"']}, "2 SPF records", ""),
        (
            "DKIM",
            {("sel._domainkey.x.test", "TXT"): []},
            "no key published at sel._domainkey.x.test",
            "v=DKIM1; k=rsa; p=",
        ),
        (
            "DKIM",
            {("sel._domainkey.x.test", "TXT"): [_txt(OTHER.record())]},
            "does not match the configured private key",
            KEY.public_key_b64()[:200],
        ),
        ("DKIM", {("sel._domainkey.x.test", "TXT"): ['"v=DKIM1; k=rsa; p="']}, "revoked", ""),
        (
            "DMARC",
            {("_dmarc.x.test", "TXT"): []},
            "has no DMARC record",
            '_dmarc.x.test TXT "v=DMARC1; p=none',
        ),
        ("DMARC", {("_dmarc.x.test", "TXT"): ['"v=DMARC1; p=maybe"']}, "p= is maybe", ""),
        ("MX", {("x.test", "MX"): []}, "has no MX", "x.test MX 10 mail.x.test"),
        ("MX", {("x.test", "MX"): ["0 ."]}, "null MX", ""),
        (
            "rDNS",
            {("10.2.0.192.in-addr.arpa", "PTR"): []},
            "192.0.2.10 has no reverse DNS name",
            "",
        ),
        (
            "rDNS",
            {("10.2.0.192.in-addr.arpa", "PTR"): ["elsewhere.test."]},
            "does not resolve back",
            "",
        ),
    ],
)
def test_each_rule_fails_with_the_record_to_publish(
    make_config, tmp_path: Path, rule, change, says, publish
) -> None:
    zone = good_domain("x.test")
    for key, value in change.items():
        if value:
            zone[key] = value
        else:
            zone.pop(key, None)
    with dns_server(zone) as ns:
        proc = run_distrib("check", "--config", str(config(make_config, tmp_path, ns, "x.test")))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    got = lines(proc)
    assert f"{rule}: fail:" in got[rule], got
    assert says in got[rule]
    if publish:
        assert "publish" in got[rule] and publish in got[rule].replace('" "', "")
    others = {r: line for r, line in got.items() if r not in (rule, "DMARC")}
    assert all(": pass:" in line for line in others.values()), others
    assert "the sending domain fails" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_spf_over_ten_lookups_is_a_permerror(make_config, tmp_path: Path) -> None:
    zone = good_domain("deep.test") | _spf_chain("deep.test", 11)
    with dns_server(zone) as ns:
        proc = run_distrib("check", "--config", str(config(make_config, tmp_path, ns, "deep.test")))
    assert proc.returncode == 1
    assert "more than 10 DNS look-ups" in lines(proc)["SPF"]
    zone = good_domain("ok.test") | _spf_chain("ok.test", 10)
    with dns_server(zone) as ns:
        proc = run_distrib("check", "--config", str(config(make_config, tmp_path, ns, "ok.test")))
    assert proc.returncode == 0, proc.stderr
    assert "SPF: pass:" in lines(proc)["SPF"] and "10 of 10" in lines(proc)["SPF"]


def test_dmarc_fails_when_nothing_that_passes_is_aligned(make_config, tmp_path: Path) -> None:
    # SPF does not cover the host, and DKIM's d= (relaxed or not) is another domain.
    zone = good_domain("from.test") | good_domain("signer.test")
    zone[("_spf.from.test", "TXT")] = ['"v=spf1 ip4:198.51.100.1 -all"']
    with dns_server(zone) as ns:
        path = config(make_config, tmp_path, ns, "from.test")
        path.write_text(
            path.read_text().replace('selector = "sel"', 'selector = "sel"\ndomain = "signer.test"')
        )
        proc = run_distrib("check", "--config", str(path))
    got = lines(proc)
    assert proc.returncode == 1
    assert "DKIM: pass:" in got["DKIM"] and "signer.test" in got["DKIM"]
    assert "DMARC: fail:" in got["DMARC"] and "d=signer.test" in got["DMARC"]


@pytest.mark.parametrize("domain", ["timeout.test", "servfail.test"])
def test_dns_failures_are_reported_not_raised(make_config, tmp_path: Path, domain: str) -> None:
    with dns_server({}) as ns:
        proc = run_distrib(
            "check", "--config", str(config(make_config, tmp_path, ns, domain)), timeout=120
        )
    assert proc.returncode == 1
    got = lines(proc)
    assert {"SPF", "DKIM", "DMARC", "MX"} <= set(got)
    for line in got.values():
        assert ": error: look-up failed" in line or "is local" in line or "no address" in line, line
    assert ("no answer in time" if domain.startswith("timeout") else "SERVFAIL") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_without_dkim_runs_no_dns_unless_asked(make_config, tmp_path: Path) -> None:
    with dns_server({}) as ns:
        path = config(make_config, tmp_path, ns, "quiet.test", dkim=False)
        proc = run_distrib("check", "--config", str(path))
        assert proc.returncode == 0, proc.stderr
        assert not lines(proc)
        asked = run_distrib("check", "--domain", "--config", str(path))
    assert asked.returncode == 1
    assert "DKIM: fail: messages are not signed" in lines(asked)["DKIM"]


def test_a_local_smtp_host_is_said_to_be_unknowable(make_config, tmp_path: Path) -> None:
    with dns_server(good_domain("local.test")) as ns:
        proc = run_distrib(
            "check",
            "--config",
            str(config(make_config, tmp_path, ns, "local.test", host="127.0.0.1")),
        )
    got = lines(proc)
    assert "SPF: info:" in got["SPF"] and "is local" in got["SPF"]
    assert "rDNS: info:" in got["rDNS"]
    # SPF unknown here, but DKIM passes and aligns: DMARC holds.
    assert "DMARC: pass:" in got["DMARC"]
    assert proc.returncode == 0, proc.stderr


def test_organizational_domain() -> None:
    assert organizational_domain("news.example.org") == "example.org"
    assert organizational_domain("mail.news.example.co.uk") == "example.co.uk"
    assert organizational_domain("example.org") == "example.org"
