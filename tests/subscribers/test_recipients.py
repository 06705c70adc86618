"""An edition's recipients: config, recipients_file and the ledger, deduplicated, minus
the suppression list; bad file rows are config errors naming the file and line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from distrib import subscribers as subs
from distrib.errors import ConfigError
from distrib.ledger import Ledger
from distrib.model import Recipient


def test_recipients_merge_dedupe_and_suppress(
    ledger: Ledger, tmp_path: Path, settings_factory
) -> None:
    (tmp_path / "team.csv").write_text(
        "email;name\nEdit@Example.org;Editor\nboss@example.org;Boss\n"
    )
    settings = settings_factory(
        email={
            "recipients": ["Owner <owner@example.org>", "edit@example.org", "left@example.org"],
            "recipients_file": "team.csv",
        }
    )
    for address in ("zed@example.org", "boss@example.org", "amy@example.org", "quit@example.org"):
        subs.add(ledger, address)
    subs.remove(ledger, "quit@example.org")
    subs.unsubscribe(ledger, "left@example.org")  # a config recipient who unsubscribed
    got = list(subs.recipients(settings, ledger))
    assert got == [
        Recipient("owner@example.org", "Owner"),
        Recipient("edit@example.org", ""),
        Recipient("boss@example.org", "Boss"),
        Recipient("amy@example.org", ""),
        Recipient("zed@example.org", ""),
    ]


def test_bad_recipients_file_names_file_and_line(
    ledger: Ledger, tmp_path: Path, settings_factory
) -> None:
    (tmp_path / "team.csv").write_text("email\nok@example.org\nnope\n\nalso@bad@example.org\n")
    settings = settings_factory(
        email={"recipients_file": "team.csv", "recipients": ["fine@example.org", "x y"]}
    )
    with pytest.raises(ConfigError) as info:
        subs.recipients(settings, ledger)  # raised at the call, before anything is sent
    problems = info.value.problems
    assert problems[0].startswith("email.recipients[1]: 'x y' is not an email address")
    assert f"email.recipients_file: {tmp_path / 'team.csv'}, line 3: 'nope'" in problems[1]
    assert ", line 5: 'also@bad@example.org'" in problems[2]


def test_missing_recipients_file(ledger: Ledger, settings_factory) -> None:
    settings = settings_factory(email={"recipients_file": "missing.csv"})
    with pytest.raises(ConfigError, match="email.recipients_file: no file at .*missing.csv"):
        subs.recipients(settings, ledger)


def test_a_large_list_streams_without_building_lists(ledger: Ledger, settings_factory) -> None:
    n = 30_000
    with ledger.transaction() as db:
        db.executemany(
            "INSERT INTO subscribers (address, name, created, updated) VALUES (?, '', 'x', 'x')",
            ((f"r{i:06d}@example.org",) for i in range(n)),
        )
    settings = settings_factory(email={"recipients": ["r000005@example.org"]})
    tracemalloc.start()
    count = 0
    for _ in subs.recipients(settings, ledger):
        count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == n
    # One page of rows at a time: far below what 30,000 Recipient objects would take.
    assert peak < 2_000_000, peak
