"""The ledger's feedback of an edition, on both backends: tracked links and their click
counts, and bounces and complaints attributed to the edition last delivered before them."""

from __future__ import annotations

from datetime import timedelta

from distrib.model import Outcome


def _send(led, newsletter: str, addresses: list[str]) -> int:
    edition = led.create_edition(newsletter, ["post-1"], "Subject", "", "<p>x</p>", "x\n")
    for address in addresses:
        assert led.claim_email(edition.id, address)
        led.mark_email(edition.id, address, Outcome.sent(f"<{address}.{edition.id}@test>"))
    return edition.id


def test_reports_count_against_the_edition_last_delivered_before_them(open_any_ledger, clock):
    start = clock[0]
    with open_any_ledger() as led:
        first = _send(led, "digest", ["a@example.org", "b@example.org", "c@example.org"])
        clock[0] = start + timedelta(hours=1)
        led.provider_event("a@example.org", "complained", "postmark", "abuse")
        clock[0] = start + timedelta(days=7)
        second = _send(led, "digest", ["b@example.org", "c@example.org"])
        clock[0] = start + timedelta(days=7, hours=2)
        led.provider_event("b@example.org", "bounced", "mailgun", "550 no such user")
        led.provider_event("c@example.org", "soft_bounce", "ses", "mailbox full")
        led.provider_event("c@example.org", "soft_bounce", "ses", "mailbox full")  # same address
        # Never sent anything: counts against no edition.
        led.provider_event("stranger@example.org", "complained", "postmark", "abuse")
        # A delivered event and a confirmation are not feedback.
        led.provider_event("b@example.org", "delivered", "mailgun")
        feedback = led.provider_feedback([first, second, 99])
    assert feedback[first] == {"bounced": 0, "soft_bounce": 0, "complained": 1}
    assert feedback[second] == {"bounced": 1, "soft_bounce": 1, "complained": 0}
    assert feedback[99] == {"bounced": 0, "soft_bounce": 0, "complained": 0}


def test_a_report_before_any_delivery_is_not_attributed(open_any_ledger, clock):
    start = clock[0]
    with open_any_ledger() as led:
        led.provider_event("a@example.org", "bounced", "postmark", "old report")
        clock[0] = start + timedelta(minutes=5)
        edition = _send(led, "digest", ["a@example.org"])
        assert led.provider_feedback([edition])[edition]["bounced"] == 0


def test_links_are_kept_counted_and_survive_reopening(open_any_ledger):
    urls = ["https://example.org/a", "https://example.org/b?x=1&y=2"]
    with open_any_ledger() as led:
        edition_id = led.next_edition_id()
        assert led.set_edition_links(edition_id, urls)
        # Not yet an edition: a link of nothing is never served.
        assert led.edition_link(edition_id, 1) is None
        led.create_edition("digest", ["p"], "S", "", "<p>x</p>", "x\n", edition_id=edition_id)
        assert led.edition_link(edition_id, 2) == urls[1]
        assert led.edition_link(edition_id, 3) is None
        assert led.edition_link(edition_id + 1, 1) is None
        assert led.count_click(edition_id, 2)
        assert led.count_click(edition_id, 2)
        assert not led.count_click(edition_id, 7)
        # Once the edition is being sent its links are its own: a later render cannot
        # renumber them under the messages already out.
        assert not led.set_edition_links(edition_id, ["https://evil.example/"])
    with open_any_ledger() as led:
        assert led.link_clicks(edition_id) == [(1, urls[0], 0), (2, urls[1], 2)]


def test_an_awaiting_edition_rendered_again_gets_its_new_links(open_any_ledger):
    with open_any_ledger() as led:
        edition_id = led.next_edition_id()
        led.set_edition_links(edition_id, ["https://example.org/old"])
        led.create_edition(
            "digest", ["p"], "S", "", "<p>x</p>", "x\n", edition_id=edition_id, status="awaiting"
        )
        assert led.set_edition_links(edition_id, ["https://example.org/new"])
        assert led.link_clicks(edition_id) == [(1, "https://example.org/new", 0)]
