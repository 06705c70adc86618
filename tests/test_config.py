"""Config: every problem at once with its dotted path; secrets by environment variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from distrib.config import load_config
from distrib.errors import ConfigError

from .conftest import REPO, run_distrib, write_config


def test_example_config_is_valid_and_strict_clean():
    settings = load_config(REPO / "config.example.toml", strict=True)
    assert settings.site.name
    assert settings.digest.window == timedelta(days=7)
    assert settings.sources[0].type == "sample"
    assert settings.email.outbox.dir == REPO / "outbox"  # relative to the config's folder


def test_three_mistakes_are_reported_at_once(tmp_path: Path):
    path = write_config(
        tmp_path / "bad.toml",
        """
        [site]
        name = "X"
        url = "not a url"

        [[sources]]
        name = "blog"
        type = "feed"
        url = "https://example.org/feed.xml"

        [digest]
        max_posts = "ten"
        window = "a week"

        [email]
        from = "news@example.org"
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert len(problems) == 3, problems
    text = str(info.value)
    assert "site.url: expected an http(s) URL" in text and "got a string 'not a url'" in text
    assert "digest.max_posts: expected an integer of 1 or more, got a string 'ten'" in text
    assert "digest.window: expected a duration" in text


def test_cli_reports_all_mistakes_and_exits_2(tmp_path: Path):
    path = write_config(
        tmp_path / "bad.toml",
        """
        [site]
        name = 1
        url = "https://x.example/"
        timezone = "Mars/Olympus"
        [[sources]]
        name = "blog"
        type = "nope"
        [email]
        from = "x@x.example"
        """,
    )
    proc = run_distrib("run", "--config", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "3 problems" in proc.stderr
    assert "site.name: expected a string, got an integer 1" in proc.stderr
    assert "site.timezone: expected a time zone name" in proc.stderr
    assert "sources[0] (blog).type: unknown source type 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outbox").exists()
    assert not (tmp_path / "distrib.sqlite").exists()  # nothing fetched, nothing recorded


def test_unknown_key_warns_and_fails_under_strict(make_config):
    path = make_config("[digest]\nmax_post = 3\n")
    settings = load_config(path)
    assert any(
        "digest.max_post: unknown key (did you mean 'max_posts'?)" in w for w in settings.warnings
    )
    with pytest.raises(ConfigError, match="digest.max_post: unknown key"):
        load_config(path, strict=True)


def test_missing_secret_names_the_variable(make_config, monkeypatch):
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    path = make_config(
        email="""
        [email]
        mailer = "smtp"
        from = "n@test.example"
        recipients = ["a@example.com"]
        unsubscribe_url = "https://test.example/u?t={token}"
        [email.smtp]
        host = "127.0.0.1"
        port = 2525
        username = "news"
        password_env = "TEST_SMTP_PASSWORD"
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, require_secrets=True)
    assert "email.smtp.password_env: the environment variable TEST_SMTP_PASSWORD is not set" in str(
        info.value
    )
    proc = run_distrib("send", "--config", str(path))
    assert proc.returncode == 2
    assert "TEST_SMTP_PASSWORD" in proc.stderr and "Traceback" not in proc.stderr
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    settings = load_config(path, require_secrets=True)
    assert settings.secret(settings.email.smtp, "password_env") == "s3cret"


def test_not_toml_and_missing_file(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("[site\nname=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    proc = run_distrib("check", "--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("distrib: no config file at")


def test_config_from_environment_variable(make_config, monkeypatch, tmp_path: Path):
    path = make_config(name="elsewhere.toml")
    monkeypatch.setenv("DISTRIB_CONFIG", str(path))
    assert load_config(None).path == path.resolve()


def test_duplicate_names_and_no_sources(tmp_path: Path):
    path = write_config(
        tmp_path / "dup.toml",
        """
        [site]
        name = "X"
        url = "https://x.example/"
        [[sources]]
        name = "a"
        type = "sample"
        [[sources]]
        name = "a"
        type = "sample"
        [email]
        from = "x@x.example"
        """,
    )
    with pytest.raises(ConfigError, match="sources\\[1\\].name: 'a' is used twice"):
        load_config(path)


def test_a_misspelt_section_is_named_with_the_problems_it_causes(make_config, tmp_path: Path):
    path = make_config(
        email="""
        [emial]
        mailer = "outbox"
        from = "n@test.example"
        recipients = ["a@example.com"]
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "email.from: missing; the From address, such as 'News <news@example.org>'",
        "emial: unknown key (did you mean 'email'?)",
    ]
    proc = run_distrib("run", "--config", str(path))
    assert proc.returncode == 2 and "did you mean 'email'" in proc.stderr
    assert not (tmp_path / "outbox").exists()


def test_zero_durations_a_missing_templates_dir_and_a_bad_recipient_are_reported_together(
    make_config, tmp_path: Path
):
    (tmp_path / "a-file").write_text("not a folder")
    path = make_config(
        """
        [digest]
        window = "0d"
        [templates]
        dir = "my-templates"
        [[channels]]
        name = "o"
        type = "outbox"
        max_age = "0h"
        """,
        email="""
        [email]
        from = "not an address"
        recipients = ["a@example.com", "bogus"]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert len(problems) == 5
    assert problems[0].startswith("digest.window: expected a duration longer than zero")
    assert problems[1].startswith("email.from: expected an email address")
    assert problems[2].startswith("channels[0] (o).max_age: expected a duration longer than zero")
    assert problems[3] == (
        f"templates.dir: expected a folder that exists (nothing at {tmp_path / 'my-templates'}), "
        "got a string 'my-templates'"
    )
    assert problems[4] == "email.recipients[1]: 'bogus' is not an email address (no @)"
    path.write_text(
        path.read_text()
        .replace('"0d"', '"7d"')
        .replace('"0h"', '"3d"')
        .replace('"my-templates"', '"a-file"')
    )
    with pytest.raises(
        ConfigError, match="templates.dir: expected a folder that exists \\(a file at"
    ):
        load_config(path)


def test_a_digest_table_beside_newsletters_is_refused_not_ignored(make_config):
    path = make_config(
        '[digest]\nmax_posts = 5\n[[newsletters]]\nname = "weekly"\ncadence = "weekly"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "digest: not used when [[newsletters]] tables are set; make it one of the [[newsletters]] "
        "(with a name) or remove it"
    ]


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path: Path):
    path = tmp_path / "windows.toml"
    path.write_bytes(
        b"\xef\xbb\xbf" + (REPO / "config.example.toml").read_bytes().replace(b"\n", b"\r\n")
    )
    assert load_config(path).site.name == load_config(REPO / "config.example.toml").site.name


def test_an_empty_secret_variable_is_named_as_empty(make_config, monkeypatch):
    monkeypatch.setenv("TEST_EMPTY_TOKEN", "")
    path = make_config(
        '[[channels]]\nname = "m"\ntype = "mastodon"\ninstance = "https://m.example"\ntoken_env = "TEST_EMPTY_TOKEN"\n'
    )
    with pytest.raises(
        ConfigError, match=r"token_env: the environment variable TEST_EMPTY_TOKEN is empty; export"
    ):
        load_config(path, require_secrets=True)


def test_a_missing_file_named_by_the_environment_variable_says_so(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DISTRIB_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError) as info:
        load_config(None)
    assert str(info.value) == (
        f"no config file at {tmp_path / 'gone.toml'} (named by $DISTRIB_CONFIG); fix DISTRIB_CONFIG or pass --config PATH"
    )


def test_a_misspelt_table_of_the_configured_mailer_is_an_error_not_a_send_with_defaults(
    make_config,
):
    email = """
        [email]
        mailer = "{mailer}"
        from = "n@test.example"
        recipients = ["a@example.com"]
        unsubscribe_url = "https://test.example/u?t={{token}}"
        [email.smpt]
        host = "mail.example.org"
        """
    with pytest.raises(ConfigError) as info:
        load_config(make_config(email=email.format(mailer="smtp")))
    assert info.value.problems == ["email.smpt: unknown mailer table (did you mean 'smtp'?)"]
    settings = load_config(
        make_config(email=email.format(mailer="outbox"))
    )  # not the mailer used: a warning
    assert settings.warnings == ("email.smpt: unknown mailer table (did you mean 'smtp'?)",)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("javascript:alert(1)", "email.unsubscribe_url: expected an https URL such as"),
        ("https://test.example/unsubscribe", "email.unsubscribe_url: has no {token} (or {email})"),
        # RFC 8058: without https the List-Unsubscribe-Post header was silently dropped
        (
            "http://test.example/u?t={token}",
            "email.unsubscribe_url: 'http://test.example/u?t={token}' is http; one-click",
        ),
    ],
)
def test_an_unsubscribe_url_that_cannot_unsubscribe_anyone_is_refused(
    make_config, url: str, problem: str
):
    path = make_config(
        email=f"""
        [email]
        from = "n@test.example"
        recipients = ["a@example.com"]
        unsubscribe_url = "{url}"
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [line] = info.value.problems
    assert line.startswith(problem)


def test_an_http_unsubscribe_url_is_refused_by_check_and_run_unless_allowed(make_config, tmp_path):
    from .conftest import run_distrib

    email = """
        [email]
        from = "n@test.example"
        recipients = ["a@example.com"]
        unsubscribe_url = "http://127.0.0.1:8080/u?t={{token}}"
        {extra}
        """
    path = make_config(email=email.format(extra=""))
    for command in ("check", "run"):
        proc = run_distrib(command, "--config", str(path))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "allow_insecure_unsubscribe = true" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "outbox").exists()
    path = make_config(email=email.format(extra="allow_insecure_unsubscribe = true"))
    assert run_distrib("check", "--config", str(path)).returncode == 0
