"""What came back from an edition: the clicks on its tracked links, and the bounces and
complaints providers reported for the addresses it went to."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .common import Part, wrap_errors

#: The consent-record events that are a provider's verdict on a message.
FEEDBACK_EVENTS = ("bounced", "soft_bounce", "complained")


class Feedback(Part):
    # --- click tracking --------------------------------------------------------------

    @wrap_errors
    def set_edition_links(self, edition_id: int, urls: Sequence[str]) -> bool:
        """Record the tracked links of edition ``edition_id`` (link n is ``urls[n - 1]``),
        replacing the ones of an earlier render while the edition is not yet recorded or
        still waits for approval.  False (nothing changed) once the edition is being sent
        or is done: the links in its messages stay the ones served."""
        with self.db.transaction():
            row = self.db.execute(
                "SELECT status FROM editions WHERE id = ?", (edition_id,)
            ).fetchone()
            if row is not None and row[0] != "awaiting":
                return False
            self.db.execute("DELETE FROM edition_links WHERE edition_id = ?", (edition_id,))
            self.db.executemany(
                "INSERT INTO edition_links (edition_id, link, url, clicks) VALUES (?, ?, ?, 0)",
                [(edition_id, n, url) for n, url in enumerate(urls, 1)],
            )
        return True

    @wrap_errors
    def edition_link(self, edition_id: int, link: int) -> str | None:
        """The original URL of link ``link`` of a recorded edition, or None."""
        row = self.db.execute(
            """SELECT l.url FROM edition_links l JOIN editions e ON e.id = l.edition_id
               WHERE l.edition_id = ? AND l.link = ?""",
            (edition_id, link),
        ).fetchone()
        return str(row[0]) if row else None

    @wrap_errors
    def count_click(self, edition_id: int, link: int) -> bool:
        """Add one click to a link, committed with a full sync; False if there is no such link."""
        cur = self.db.execute_durably(
            "UPDATE edition_links SET clicks = clicks + 1 WHERE edition_id = ? AND link = ?",
            (edition_id, link),
        )
        return cur.rowcount == 1

    @wrap_errors
    def link_clicks(self, edition_id: int) -> list[tuple[int, str, int]]:
        """(link number, original URL, clicks) of an edition's tracked links, in order."""
        return [
            (int(r[0]), str(r[1]), int(r[2]))
            for r in self.db.execute(
                "SELECT link, url, clicks FROM edition_links WHERE edition_id = ? ORDER BY link",
                (edition_id,),
            )
        ]

    # --- bounces and complaints --------------------------------------------------------

    @wrap_errors
    def provider_feedback(self, edition_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """Per edition of ``edition_ids``: how many addresses it went to bounced (hard),
        soft-bounced or complained, by the provider reports in the consent record.

        A report counts against the edition last delivered to its address before it came
        (the providers' webhooks name the address, and the edition is the message they
        judged); an address counts once per kind and edition.  Reports for addresses
        since erased (`subscribers forget`) are gone with them."""
        wanted = set(edition_ids)
        out: dict[int, dict[str, set[str]]] = {
            e: {k: set() for k in FEEDBACK_EVENTS} for e in wanted
        }
        marks = ", ".join("?" for _ in FEEDBACK_EVENTS)
        rows = self.db.execute(
            f"""SELECT c.address, c.event,
                       (SELECT d.edition_id FROM email_deliveries d
                         WHERE d.address = c.address AND d.status IN ('sent', 'in_doubt')
                           AND d.updated <= c.at
                         ORDER BY d.updated DESC, d.edition_id DESC LIMIT 1) AS edition
                FROM consent_events c WHERE c.event IN ({marks})""",
            FEEDBACK_EVENTS,
        )
        for address, event, edition in rows:
            if edition in wanted:
                out[edition][event].add(address)
        return {e: {k: len(v) for k, v in kinds.items()} for e, kinds in out.items()}
