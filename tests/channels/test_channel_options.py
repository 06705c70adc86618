"""Channel options are validated under the channel's own path, every problem at once."""

from __future__ import annotations

from distrib.config import CHANNEL, Ctx, validate_table


def _problems(tmp_path, raw):
    ctx = Ctx(base_dir=tmp_path)
    validate_table(CHANNEL, raw, "channels[0] (c)", ctx)
    return ctx.problems


def test_bad_values_are_reported_with_their_path(tmp_path):
    assert _problems(
        tmp_path,
        {
            "name": "c",
            "type": "bluesky",
            "handle": "@news.example.org",
            "password_env": "not a name",
            "per_hour": 0,
        },
    ) == [
        "channels[0] (c).per_hour: expected an integer of 1 or more, got an integer 0",
        "channels[0] (c).handle: expected a Bluesky handle such as 'news.example.org' (without '@') or a DID, got a string '@news.example.org'",
        "channels[0] (c).password_env: expected the name of an environment variable, such as 'SMTP_PASSWORD', got a string 'not a name'",
    ]


def test_required_credentials_are_named(tmp_path):
    problems = _problems(tmp_path, {"name": "c", "type": "mastodon"})
    assert [p.split(":")[0] for p in problems] == [
        "channels[0] (c).instance",
        "channels[0] (c).token_env",
    ]


def test_telegram_chat_and_linkedin_author(tmp_path):
    assert _problems(
        tmp_path, {"name": "c", "type": "telegram", "token_env": "T", "chat_id": "harbour"}
    ) == [
        "channels[0] (c).chat_id: expected a chat such as '@harbourlight' or '-1001234567890', got a string 'harbour'"
    ]
    assert (
        _problems(
            tmp_path,
            {"name": "c", "type": "telegram", "token_env": "T", "chat_id": "-1001234567890"},
        )
        == []
    )
    assert _problems(tmp_path, {"name": "c", "type": "linkedin", "token_env": "T", "author": "me"})[
        0
    ].startswith("channels[0] (c).author: expected an author URN")


def test_unknown_channel_type_lists_the_known_ones(tmp_path):
    [problem] = _problems(tmp_path, {"name": "c", "type": "myspace"})
    assert problem.startswith(
        "channels[0] (c).type: unknown channel type 'myspace': expected one of "
    )
    for name in ("bluesky", "discord", "linkedin", "mastodon", "outbox", "slack", "telegram", "x"):
        assert name in problem
