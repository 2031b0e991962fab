"""The exceptions users see; each message says what happened and what to do."""


class AzchatError(Exception):
    """Base class: the CLI prints the message (no traceback) and exits non-zero."""

    exit_code = 1


class NotesNotFoundError(AzchatError):
    exit_code = 2


class IndexNotFoundError(AzchatError):
    exit_code = 3


class IndexCorruptError(AzchatError):
    exit_code = 3


class IndexLockedError(AzchatError):
    exit_code = 4


class ModelError(AzchatError):
    exit_code = 5


class InputError(AzchatError):
    """The command's own input is unusable (an empty question)."""

    exit_code = 2


class SourceError(AzchatError):
    """A source that cannot be shown: outside the notes folder, not an indexed note, or no such line."""

    exit_code = 2


class IndexWriteError(AzchatError, OSError):
    """The index folder could not be written (disk full, no permission, not a folder)."""

    exit_code = 6
