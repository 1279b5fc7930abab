"""One exception hierarchy: every message names the file, line, field and reason it can."""

from __future__ import annotations


class PrefpipeError(Exception):
    """Anything prefpipe reports to its user as a one-line error."""


class InputError(PrefpipeError):
    """Bad user input: a file, a flag or a value that prefpipe cannot use."""

    def __init__(self, reason: str, *, file: object = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file, self.line, self.field, self.reason = file, line, field, reason
        where = ":".join(str(p) for p in (file, line) if p is not None)
        what = f"{field}: {reason}" if field else reason
        super().__init__(f"{where}: {what}" if where else what)


class WarehouseBusy(PrefpipeError):
    """Another process holds the warehouse file for longer than we are willing to wait."""
