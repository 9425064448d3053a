"""Error types that carry an exit code, so the CLI can map failures without string matching."""

from __future__ import annotations


class ClusterdivError(Exception):
    """Base class for errors clusterdiv reports to the user as one line.

    Messages speak of the library's parameters, never of CLI flags: `option` names the parameter
    at fault (``"drop_share"``) and the CLI appends its flag (``--drop-share``) when it prints one.
    """

    exit_code = 1
    option: str | None = None

    def __init__(self, *args: object, option: str | None = None) -> None:
        super().__init__(*args)
        if option is not None:
            self.option = option


class InputError(ClusterdivError):
    """The user's input (file, field, option, spec) is wrong: exit code 2, nothing was computed."""

    exit_code = 2


class CorpusError(InputError):
    """A corpus file could not be read; the message names the file and, where known, the line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{location}{message}")
        self.path = path
        self.line = line


class CorpusTooLarge(CorpusError):
    """The input (or one record of it) is over a size limit; the service answers 413."""


class ModelIntegrityError(ClusterdivError):
    """Bundled model weights do not match the hash we ship; refuse to load them."""
