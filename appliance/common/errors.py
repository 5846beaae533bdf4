"""One tree of domain errors.

Every error a user can cause or meet derives from :class:`KilnError`. The message is written
for the person who has to act on it: it names what is wrong and what is allowed or what to do
next. Delivery layers (CLI, HTTP) translate these into exit codes and status codes in exactly
one place each; library code raises, it never prints or exits.
"""

from __future__ import annotations


class KilnError(Exception):
    """Base of every error Kiln reports to a user."""

    #: Short machine-readable kind, stable across releases (used by the API and tests).
    code = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigurationError(KilnError):
    """The configuration is invalid."""

    code = "configuration"


class SpecificationError(KilnError):
    """The environment specification is invalid.

    ``field`` names the offending part of the spec (``name``, ``dependencies[2]``, ...) and
    ``line`` is the 1-based line in the submitted YAML when it is known.
    """

    code = "specification"

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.line = line


class ChannelError(KilnError):
    """A conda channel cannot be used (bad layout, unreachable, not allowed)."""

    code = "channel"


class BuildError(KilnError):
    """A build failed; the message is the one-line reason shown to the user."""

    code = "build"


class SolveError(BuildError):
    """The specification cannot be satisfied by the configured channels."""

    code = "solve"


class StorageError(KilnError):
    """Artifact storage failed (unreachable, wrong credentials, missing bucket, ...)."""

    code = "storage"


class ArtifactNotFound(StorageError):
    """The requested artifact does not exist in storage."""

    code = "artifact_not_found"


class DatabaseError(KilnError):
    """The database cannot be used (cannot be started, reached, or is in an unexpected state)."""

    code = "database"
