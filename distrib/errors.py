"""The exceptions distrib raises; the CLI turns each into one line and an exit code.

Every error a user can cause is a :class:`DistribError` whose message names the thing
and the fix.  Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

#: Exit codes, the contract with cron and scripts (see README, "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1  # something failed and was recorded; the rest went on
EXIT_USAGE = 2  # bad config or usage: nothing was fetched or sent


class DistribError(Exception):
    """Base class: a problem the user can fix.  ``str(e)`` is the one line shown."""

    exit_code = EXIT_FAILED


class ConfigError(DistribError):
    """The configuration is wrong.  Carries every problem found, not just the first."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str] | str, path: str | None = None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.path = path
        where = f"{path}: " if path else ""
        if len(self.problems) == 1:
            msg = f"{where}{self.problems[0]}"
        else:
            msg = f"{where}{len(self.problems)} problems in the config:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(msg)


class TemplateError(DistribError):
    """A template does not load, render or compile; names the file and line."""

    exit_code = EXIT_USAGE


class LockedError(DistribError):
    """Another distrib run holds the ledger's run lock."""

    exit_code = EXIT_FAILED


class LedgerError(DistribError):
    """The ledger file cannot be used (newer schema, not ours, corrupt)."""

    exit_code = EXIT_USAGE


class SourceError(DistribError):
    """One source could not be read; the others go on."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"source {source!r}: {reason}")


class AdapterUnavailable(DistribError):
    """An adapter's optional library is not installed."""

    exit_code = EXIT_USAGE


class DeliveryError(DistribError):
    """A delivery failed for good (5xx, rejected by the API)."""


class Deferred(DistribError):
    """A delivery must wait: a rate limit or a temporary failure.

    ``retry_after`` is the number of seconds the remote side asked for, if it said.
    """

    def __init__(self, reason: str, retry_after: float | None = None):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class ChannelUnavailable(Deferred):
    """A channel cannot post at all right now (its folder cannot be written, ...).

    Nothing was posted, so the share stays owed (deferred, never failed: it must not be
    lost), but unlike a rate limit this needs the user: the run reports it and exits 1.
    """


class ListenError(DistribError):
    """A local server (``distrib serve``, ``preview --serve``) cannot listen on its address."""

    exit_code = EXIT_USAGE

    def __init__(self, host: str, port: int, error: OSError):
        import errno

        fix = {
            errno.EADDRINUSE: "another program uses that port; pick another with --port",
            errno.EACCES: "ports below 1024 need privileges; pick a port above 1023 with --port",
            errno.EADDRNOTAVAIL: "this machine has no such address; check --host",
        }.get(error.errno or 0, "check --host and --port")
        super().__init__(f"cannot listen on {host}:{port}: {error.strerror or error}; {fix}")


class UsageError(DistribError):
    """A command was asked for something that does not exist (``--edition 99``)."""

    exit_code = EXIT_USAGE
