"""Subscribers kept in the ledger, CSV import/export, and an edition's recipients.

A library for `distrib subscribers …` and `distrib unsubscribe`; the click commands are
a few lines over these functions.  The suppression list is the ``subscribers`` table
itself: a row whose status is not ``active`` (unsubscribed, bounced, complained) is
never mailed, and it keeps its row so that a later import cannot revive it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .addresses import normalise_address, recipient_problems
from .errors import ConfigError
from .model import Recipient
from .paths import private_opener

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs is Python 3.13

    from .config import Settings
    from .ledger import Ledger
    from .ledger import Row as LedgerRow

STATUSES = ("active", "unsubscribed", "bounced", "complained")

#: At most this many bad rows are kept with their text (the count is always exact).
MAX_BAD_ROWS = 1000
#: A recipients_file with more bad lines than this stops listing them in the error.
_MAX_FILE_PROBLEMS = 20
#: Rows imported per transaction: big imports stay fast, a kill loses one batch at most
#: (and an import run again is idempotent).
_IMPORT_BATCH = 5000
_PAGE = 1000

_HEADER_EMAIL = ("email", "e-mail", "email address", "e-mail address", "mail", "address")
_HEADER_NAME = ("name", "full name", "fullname", "display name")
_HEADER_STATUS = ("status",)
_HEADER_REASON = ("reason",)
#: The newsletters an address left alone (its unsubscribe link named one), "|"-separated.
_HEADER_LEFT = ("left_newsletters",)


def _cell(cells: list[str], i: int) -> str:
    return unguard_cell(cells[i]).strip() if 0 <= i < len(cells) else ""


# A cell a spreadsheet would run as a formula ("=HYPERLINK(...)", "+1", "-2", "@SUM").
# export_csv writes it with a leading "'" (spreadsheets show the text, not a formula);
# a cell that already starts with quotes before such a character gets one more, so
# that reading the file back drops exactly one and every value round-trips.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_GUARDED = re.compile(r"'+[=+\-@\t\r]")


def guard_cell(value: str) -> str:
    """``value`` as a CSV cell that no spreadsheet runs as a formula."""
    return "'" + value if _FORMULA.match(value) else value


def unguard_cell(value: str) -> str:
    """The value :func:`guard_cell` was given (a cell of another file is left as it is,
    but for one "'" before "=", "+", "-" or "@", which spreadsheets hide too)."""
    return value[1:] if _GUARDED.match(value) else value


def _split_display(email: str, name: str) -> tuple[str, str]:
    """A cell written as 'Ana Lopez <ana@example.com>' (as ``email.recipients`` accepts,
    and as mail clients export contacts) gives its address, and its name when the name
    cell is empty; anything else is left to :func:`normalise_address` to judge."""
    if "<" in email and email.rstrip().endswith(">"):
        display, addr = parseaddr(email)
        if addr:
            return addr, name or display
    return email, name


# --- CSV ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of a subscriber CSV file: where it starts, its address and name cells."""

    line: int
    email: str
    name: str
    #: The file's ``status`` and ``reason`` cells (a file :func:`export_csv` wrote), or "".
    status: str = ""
    reason: str = ""
    #: The file's ``left_newsletters`` cell, split: newsletters this address left.
    left: tuple[str, ...] = ()


def _is_binary(stream: IO[str] | IO[bytes]) -> TypeIs[IO[bytes]]:
    """A stream of bytes (an ``open(..., "rb")`` file, BytesIO), to be decoded."""
    return isinstance(stream, (io.RawIOBase, io.BufferedIOBase)) or "b" in getattr(
        stream, "mode", ""
    )


def _open_text(
    path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes],
) -> tuple[IO[str], Callable[[], object]]:
    """A text stream (BOM dropped) and what to call when done with it: a file opened
    here is closed, a wrapper around the caller's binary stream is detached (so the
    caller's stream is not closed with it), the caller's text stream is left open."""
    if isinstance(path_or_file, (str, os.PathLike)):
        opened = open(path_or_file, encoding="utf-8-sig", newline="")
        return opened, opened.close
    if _is_binary(path_or_file):
        wrapper = io.TextIOWrapper(path_or_file, encoding="utf-8-sig", newline="")
        return wrapper, wrapper.detach
    return path_or_file, lambda: None


def _delimiter(line: str) -> str:
    """The delimiter of a file from its first line: the most frequent of , ; and tab
    outside quotes (spreadsheets in many locales write ';').  A single column: ','."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in counts:
            counts[c] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


#: Columns an export writes that an import reads past on purpose.
_HEADER_KNOWN_OTHER = ("created", "updated")


class NotUtf8(ValueError):
    """The CSV file is not UTF-8; the message names the encoding it looks like."""


def _guess_encoding(path_or_file: Any) -> str:
    """What a non-UTF-8 subscriber file most likely is, for the message that says so."""
    if not isinstance(path_or_file, (str, os.PathLike)):
        return ""
    try:
        with open(path_or_file, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return ""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return ""
    return "Windows-1252 (Latin-1)"


def read_rows(
    path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes],
    header_info: dict[str, Any] | None = None,
) -> Iterator[Row]:
    """Stream the data rows of a subscriber CSV file.

    Accepts a header row naming an ``email`` column (and optionally ``name``), or a file
    without a header whose first column is the address and second, if any, the name.
    UTF-8 with or without a BOM; ``,`` ``;`` or tab delimited.  Blank lines are skipped.
    Raises ValueError (with the line) when the file is not UTF-8 (:class:`NotUtf8`) or
    not CSV.  ``header_info``, when given, receives ``ignored``: the header's columns
    that are read past (not email, name, status, reason, nor an export's dates).
    """
    stream, done = _open_text(path_or_file)
    try:
        # Find the first non-blank line to choose the delimiter; keep it for the reader.
        first, lines_before = _first_line(stream)
        if not first:
            return
        if first.lower().startswith("sep=") and len(first.strip()) == 5:
            # Excel's hint line ("sep=;"): it names the delimiter and is not data.
            delim = first.strip()[4]
            first, more = _first_line(stream)
            lines_before += more
            if not first:
                return
        else:
            delim = _delimiter(first)

        def lines() -> Iterator[str]:
            yield first
            yield from stream

        reader = csv.reader(lines(), delimiter=delim)
        email_col, name_col, status_col, reason_col, left_col = 0, 1, -1, -1, -1
        start = lines_before  # physical line number where the next record starts
        header = True
        try:
            for cells in reader:
                line = start
                start = lines_before + reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if header:
                    header = False
                    columns = _header_columns(cells, header_info)
                    if columns is not None:
                        email_col, name_col, status_col, reason_col, left_col = columns
                        continue
                email, name = _split_display(_cell(cells, email_col), _cell(cells, name_col))
                left = tuple(n.strip() for n in _cell(cells, left_col).split("|") if n.strip())
                yield Row(
                    line,
                    email,
                    name,
                    _cell(cells, status_col).lower(),
                    _cell(cells, reason_col),
                    left,
                )
        except csv.Error as e:
            raise ValueError(
                f"line {lines_before + reader.line_num}: not valid CSV ({e})"
            ) from None
    except UnicodeDecodeError:
        raise _not_utf8(path_or_file) from None
    finally:
        done()


def _first_line(stream: IO[str]) -> tuple[str, int]:
    """The next non-blank line ("" at the end) and how many lines were read to find it."""
    n = 0
    for raw in stream:
        n += 1
        if raw.strip():
            return raw, n
    return "", n


def _header_columns(
    cells: list[str], header_info: dict[str, Any] | None
) -> tuple[int, int, int, int, int] | None:
    """The (email, name, status, reason, left newsletters) columns a header row names, -1 for those it
    lacks; None when the row names no email column (it is data).  ``header_info`` gets
    the columns that are read past."""
    lowered = [c.strip().lower() for c in cells]
    found = next((i for i, c in enumerate(lowered) if c in _HEADER_EMAIL), None)
    if found is None:
        return None
    name_col = next((i for i, c in enumerate(lowered) if c in _HEADER_NAME), -1)
    status_col = next((i for i, c in enumerate(lowered) if c in _HEADER_STATUS), -1)
    reason_col = next((i for i, c in enumerate(lowered) if c in _HEADER_REASON), -1)
    left_col = next((i for i, c in enumerate(lowered) if c in _HEADER_LEFT), -1)
    if header_info is not None:
        used = {found, name_col, status_col, reason_col, left_col}
        header_info["ignored"] = [
            cells[i].strip()
            for i, c in enumerate(lowered)
            if c and i not in used and c not in _HEADER_KNOWN_OTHER
        ]
    return found, name_col, status_col, reason_col, left_col


def _not_utf8(path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes]) -> NotUtf8:
    guess = _guess_encoding(path_or_file)
    looks = f" (it looks like {guess})" if guess else ""
    name = os.fspath(path_or_file) if isinstance(path_or_file, (str, os.PathLike)) else "FILE"
    convert = (
        f" or convert it: iconv -f {guess.split()[0].upper()} -t UTF-8 {name} > utf8.csv"
        if guess
        else ""
    )
    return NotUtf8(f'not UTF-8 text{looks}; nothing was imported: save it as "CSV UTF-8"{convert}')


@dataclass
class ImportReport:
    """What an import did.  ``bad`` keeps the first :data:`MAX_BAD_ROWS` rejected rows as
    (line number, text, reason); ``bad_count`` counts them all."""

    added: int = 0
    already: int = 0  # known before (any status), or repeated in the file
    suppressed: int = 0  # of ``already``: known and suppressed, so they stay suppressed
    #: rows whose ``status`` cell said unsubscribed/bounced/complained, now suppressed
    #: (a re-imported export keeps its suppression list)
    marked_suppressed: int = 0
    bad: list[tuple[int, str, str]] = field(default_factory=list)
    bad_count: int = 0
    dry_run: bool = False
    rows: int = 0  # data rows read (good and bad)
    ignored_columns: list[str] = field(default_factory=list)  # header columns read past

    def _bad(self, line: int, text: str, reason: str) -> None:
        self.bad_count += 1
        if len(self.bad) < MAX_BAD_ROWS:
            self.bad.append((line, text[:200], reason))


def import_csv(
    ledger: Ledger,
    path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes],
    *,
    dry_run: bool = False,
) -> ImportReport:
    """Add every valid address of a CSV file as an active subscriber; never duplicates.

    An address already in the ledger is left as it is: a suppressed one stays
    suppressed, whatever the file says.  A row whose ``status`` column (as
    :func:`export_csv` writes it) says unsubscribed, bounced or complained is put on the
    suppression list, new or known, so moving a ledger by export and import never
    revives an address that asked not to be mailed; an unknown status is a bad row.  ``dry_run`` does the same work in a
    transaction that is rolled back, so its counts are exact and nothing is written.
    Raises ValueError when the file cannot be read as CSV at all.
    """
    report = ImportReport(dry_run=dry_run)
    in_batch = 0
    header: dict[str, Any] = {}
    with ledger.batches(dry_run=dry_run) as commit_so_far:
        for row in read_rows(path_or_file, header):
            report.rows += 1
            try:
                address = normalise_address(row.email)
            except ValueError as e:
                report._bad(row.line, row.email, str(e))
                continue
            if row.status not in ("", "active") and row.status not in STATUSES:
                report._bad(
                    row.line,
                    row.email,
                    f"unknown status {row.status!r}: expected one of {', '.join(STATUSES)}",
                )
                continue
            if row.status not in ("", "active"):
                if not ledger.is_suppressed(address):
                    report.marked_suppressed += 1
                    added = ledger.get_subscriber(address) is None
                    if added:
                        ledger.add_subscriber(address, row.name)
                    ledger.suppress(address, row.status, row.reason)
                    report.added += added
                    report.already += not added
                else:
                    report.already += 1
                    report.suppressed += 1
            elif ledger.add_subscriber(address, row.name):
                report.added += 1
            else:
                report.already += 1
                if ledger.is_suppressed(address):
                    report.suppressed += 1
            for newsletter in row.left:
                ledger.opt_out(address, newsletter, "imported")
            in_batch += 1
            if not dry_run and in_batch >= _IMPORT_BATCH:
                commit_so_far()
                in_batch = 0
    report.ignored_columns = list(header.get("ignored") or [])
    return report


def export_csv(
    ledger: Ledger, out: str | os.PathLike[str] | IO[str], status: str | None = None
) -> int:
    """Write subscribers (all, or those with ``status``) as CSV that :func:`import_csv`
    reads back; return the number of rows.  A cell that starts like a formula ("=",
    "+", "-", "@") gets a leading "'" (see :func:`guard_cell`), which import drops."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
    # A file is created 0600: it is the subscriber list.
    owned = isinstance(out, (str, os.PathLike))
    stream: IO[str]
    if isinstance(out, (str, os.PathLike)):
        stream = open(out, "w", encoding="utf-8", newline="", opener=private_opener)
    else:
        stream = out
    try:
        writer = csv.writer(stream)
        writer.writerow(
            ["email", "name", "status", "reason", "created", "updated", "left_newsletters"]
        )
        left = ledger.all_opt_outs()
        n = 0
        for sub in list_subscribers(ledger, status):
            gone = "|".join(sorted(left.get(sub.email, ())))
            writer.writerow(
                [
                    guard_cell(v)
                    for v in (
                        sub.email,
                        sub.name,
                        sub.status,
                        sub.reason,
                        sub.created,
                        sub.updated,
                        gone,
                    )
                ]
            )
            n += 1
        return n
    finally:
        if owned:
            stream.close()


# --- one subscriber -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    name: str
    status: str  # active | unsubscribed | bounced | complained
    reason: str  # why suppressed; "" when active
    created: str  # ISO 8601 UTC
    updated: str


def add(ledger: Ledger, address: str, name: str = "") -> bool:
    """Add an active subscriber; False if the address is already known (a suppressed one
    stays suppressed).  ValueError if it is not an address.  'Ana <ana@example.com>'
    (as a mail client shows it) gives the address, and the name unless one is given."""
    address, name = _split_display(address, name.strip())
    return ledger.add_subscriber(normalise_address(address), name)


def remove(ledger: Ledger, address: str) -> bool:
    """Unsubscribe a subscriber, keeping the row so the address stays suppressed.

    False if the address is not an active subscriber (unknown, or already suppressed).
    """
    address, _ = _split_display(address, "")
    return ledger.suppress_active(normalise_address(address), "unsubscribed", "removed")


def unsubscribe(
    ledger: Ledger, address: str, reason: str = "manual", status: str = "unsubscribed"
) -> bool:
    """Put an address on the suppression list, subscriber or not (an address from
    ``email.recipients`` too), as ``status`` (unsubscribed, bounced, complained: what
    an ESP's bounce or complaint report says).  False if it was already suppressed."""
    if status not in STATUSES or status == "active":
        raise ValueError(
            f"unknown suppression {status!r}: expected unsubscribed, bounced or complained"
        )
    address = normalise_address(_split_display(address, "")[0])
    if ledger.is_suppressed(address):
        return False
    ledger.suppress(address, status, reason)
    return True


def get(ledger: Ledger, address: str) -> Subscriber | None:
    row = ledger.get_subscriber(normalise_address(address))
    return _subscriber(row) if row else None


def list_subscribers(ledger: Ledger, status: str | None = None) -> Iterator[Subscriber]:
    """Every subscriber (or those with ``status``), in address order, streamed in pages."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
    after = ""
    while True:
        page = ledger.subscriber_page(status, after, _PAGE)
        for row in page:
            yield _subscriber(row)
        if len(page) < _PAGE:
            return
        after = page[-1]["address"]


def counts(ledger: Ledger) -> dict[str, int]:
    """Subscribers per status."""
    return ledger.subscriber_counts()


def _subscriber(row: LedgerRow) -> Subscriber:
    return Subscriber(
        email=row["address"],
        name=row["name"] or "",
        status=row["status"],
        reason=row["reason"] or "",
        created=row["created"],
        updated=row["updated"],
    )


# --- an edition's recipients -------------------------------------------------------------------


def recipients(
    settings: Settings, ledger: Ledger, newsletter: str | None = None
) -> Iterator[Recipient]:
    """The edition's recipients: ``email.recipients``, then ``email.recipients_file``,
    then the ledger's active subscribers; each address once; suppressed ones left out,
    those who paused (the preferences page), and those who left ``newsletter`` alone
    (its unsubscribe link, or the preferences page) when one is given.

    The config and file addresses are read (and checked) now, so a bad one raises
    :class:`ConfigError` naming the file and line before anything is sent; they are
    few, so a set dedupes them.  The subscribers are streamed page by page: a million
    of them never sit in memory at once.
    """
    fixed = list(_fixed_recipients(settings))
    return _stream(fixed, ledger, newsletter)


def _stream(
    fixed: list[Recipient], ledger: Ledger, newsletter: str | None = None
) -> Iterator[Recipient]:
    left = ledger.opted_out(newsletter) if newsletter is not None else set()
    left |= ledger.paused()  # paused from the preferences page: nothing until they resume
    seen = {r.email for r in fixed} | left
    for r in fixed:
        if r.email.lower() not in left and not ledger.is_suppressed(r.email):
            yield r
    after = ""
    while True:
        page = ledger.subscriber_page("active", after, _PAGE)
        for row in page:
            address = row["address"]
            if address not in seen:
                yield Recipient(address, row["name"] or "")
        if len(page) < _PAGE:
            return
        after = page[-1]["address"]


def fixed_recipients(settings: Settings) -> list[Recipient]:
    """The addresses of ``email.recipients`` and ``email.recipients_file``, checked."""
    return list(_fixed_recipients(settings))


def _fixed_recipients(settings: Settings) -> Iterable[Recipient]:
    email = settings.email
    problems: list[str] = recipient_problems(email.recipients or ())
    out: dict[str, Recipient] = {}
    for text in email.recipients or ():
        name, addr = parseaddr(text)
        try:
            address = normalise_address(addr or text)
        except ValueError:
            continue  # in problems already
        out.setdefault(address, Recipient(address, name))
    path = email.recipients_file
    if path is not None:
        path = Path(path)
        try:
            for row in read_rows(path):
                try:
                    address = normalise_address(row.email)
                except ValueError as e:
                    if len(problems) < _MAX_FILE_PROBLEMS:
                        problems.append(
                            f"email.recipients_file: {path}, line {row.line}: "
                            f"{row.email!r} is not an email address ({e}); fix or remove the line"
                        )
                    continue
                out.setdefault(address, Recipient(address, row.name))
        except FileNotFoundError:
            problems.append(
                f"email.recipients_file: no file at {path}; fix the path or remove the key"
            )
        except OSError as e:
            problems.append(f"email.recipients_file: cannot read {path}: {e.strerror}")
        except ValueError as e:
            problems.append(f"email.recipients_file: {path}: {e}")
    if problems:
        raise ConfigError(problems, str(settings.path))
    return out.values()
