"""The ledger's part in setup errors, retries and in-doubt deliveries."""

from __future__ import annotations

from distrib.model import Outcome


def edition(led):
    return led.create_edition("digest", ["p"], "S", "P", "<p>x</p>", "x")


def test_release_puts_a_first_claim_back_as_untouched(open_any_ledger) -> None:
    with open_any_ledger() as led:
        ed = edition(led)
        assert led.claim_email(ed.id, "a@example.org")
        led.mark_email(ed.id, "a@example.org", Outcome.released("postmark: account may not send"))
        assert led.email_status(ed.id, "a@example.org") is None
        assert led.claim_email(ed.id, "a@example.org")
        row = led.db.execute("SELECT attempts FROM email_deliveries").fetchone()
        assert row[0] == 1


def test_release_keeps_an_earlier_deferral_due_at_once_without_counting(open_any_ledger) -> None:
    with open_any_ledger() as led:
        ed = edition(led)
        led.claim_email(ed.id, "a@example.org")
        led.mark_email(ed.id, "a@example.org", Outcome.deferred("throttled", retry_after=0))
        led.db.execute("UPDATE email_deliveries SET not_before = NULL")
        assert led.claim_email(ed.id, "a@example.org")  # attempt 2
        led.mark_email(ed.id, "a@example.org", Outcome.released("ses: sender not verified"))
        status, attempts, not_before = led.db.execute(
            "SELECT status, attempts, not_before FROM email_deliveries"
        ).fetchone()
        assert (status, attempts, not_before) == ("deferred", 1, None)
        assert led.claim_email(ed.id, "a@example.org")


def test_in_doubt_is_not_claimed_again_and_is_counted(open_any_ledger) -> None:
    with open_any_ledger() as led:
        ed = edition(led)
        led.claim_email(ed.id, "a@example.org")
        led.mark_email(ed.id, "a@example.org", Outcome.in_doubt("no answer"))
        assert not led.claim_email(ed.id, "a@example.org")
        assert led.email_counts(ed.id)["in_doubt"] == 1
        assert "in_doubt" not in led.email_counts(ed.id + 1)


def test_requeue_failed_skips_suppressed_and_records_itself(open_any_ledger) -> None:
    with open_any_ledger() as led:
        ed = edition(led)
        for address, outcome in (
            ("a@example.org", Outcome.failed("hard bounce", bounce=True)),
            ("b@example.org", Outcome.failed("invalid")),
            ("c@example.org", Outcome.in_doubt("no answer")),
            ("d@example.org", Outcome.sent("id")),
        ):
            led.claim_email(ed.id, address)
            led.mark_email(ed.id, address, outcome)
        led.finish_edition(ed.id)
        assert led.failed_requeued(ed.id) is None
        assert led.requeue_failed(ed.id) == 1
        assert led.email_status(ed.id, "b@example.org") is None
        assert led.email_status(ed.id, "a@example.org") == "failed"  # suppressed as bounced
        assert led.email_status(ed.id, "c@example.org") == "in_doubt"
        assert [e.id for e in led.unfinished_editions("digest")] == [ed.id]
        record = led.failed_requeued(ed.id)
        assert record is not None and record["requeued"] == 1
        assert led.requeue_failed(ed.id, in_doubt=True) == 1
        assert led.email_status(ed.id, "c@example.org") is None
