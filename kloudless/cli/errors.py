"""Exit codes, the error type client commands raise, and the one-line form of API errors."""

from __future__ import annotations

from typing import Any

from .env import ENV_API_KEY, ENV_TOKEN

#: Exit codes, one per kind of failure, so that scripts can tell them apart (docs/cli.rst lists
#: them; :data:`EXIT_CODES` is that table).
EXIT_OK = 0
#: Anything not listed below: a local file error, an API error of another kind.
EXIT_FAILURE = 1
#: Usage: a bad option or argument, missing credentials, an ambiguous name.
EXIT_USAGE = 2
#: Not found: no such remote file, folder or calendar (404), or no such local file.
EXIT_NOT_FOUND = 3
#: Authentication: the credentials were refused (401) or do not allow this (403).
EXIT_AUTH = 4
#: Conflict: the destination exists (remote 409/412, or a local file without ``--force``).
EXIT_CONFLICT = 5
#: Network: the server could not be reached, or did not answer in time.
EXIT_NETWORK = 6
#: Server: the server failed (5xx) or kept refusing for load (429) after the retries.
EXIT_SERVER = 7
#: Interrupted by Ctrl-C (128 + SIGINT), as shells do.
EXIT_INTERRUPTED = 130

#: ``(code, meaning)`` for every exit code, in the order the documentation lists them.
EXIT_CODES = (
    (EXIT_OK, "success"),
    (EXIT_FAILURE, "another failure (a local file error, another API error)"),
    (EXIT_USAGE, "usage: a bad option or argument, missing credentials, an ambiguous name"),
    (EXIT_NOT_FOUND, "not found: no such remote file, folder or calendar, or local file"),
    (EXIT_AUTH, "authentication: credentials refused (401) or not allowed (403)"),
    (EXIT_CONFLICT, "conflict: the destination exists (409, or a local file without --force)"),
    (EXIT_NETWORK, "network: the server cannot be reached or did not answer in time"),
    (EXIT_SERVER, "server: the server failed (5xx) or stayed overloaded (429)"),
    (EXIT_INTERRUPTED, "interrupted by Ctrl-C"),
)


def exit_code_for_status(status: int | None) -> int:
    """:returns: the exit code for an API error with HTTP status ``status``."""
    if status in (401, 403):
        return EXIT_AUTH
    if status in (404, 410):
        return EXIT_NOT_FOUND
    if status in (409, 412):
        return EXIT_CONFLICT
    if status is not None and (status == 429 or status >= 500):
        return EXIT_SERVER
    return EXIT_FAILURE


class CommandError(Exception):
    """A failure with a message meant for the user; printed as one line on stderr.

    :param message: what went wrong and, where possible, what to do about it.
    :param exit_code: the process exit code (default :data:`EXIT_USAGE`).
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Interrupted(Exception):
    """Ctrl-C, reported as one line (``interrupted; ...``) and :data:`EXIT_INTERRUPTED`.

    :param message: what to say, e.g. how to resume.
    """

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)
        self.message = message


def describe_api_error(exc: Any) -> str:
    """Summarise an API error in one line: status, error code, message and request id.

    :param exc: a :class:`kloudless.exceptions.APIException`.
    :returns: its :attr:`~kloudless.exceptions.APIException.summary` (e.g. ``404 not_found: The
        file does not exist. (request 5f2c...)``), with a hint on the credentials for a 401.
    """
    status = getattr(exc, "status", None)
    text = getattr(exc, "summary", None)
    if not isinstance(text, str):  # not one of the SDK's exceptions
        message = getattr(exc, "default_message", None) or type(exc).__name__
        text = f"{status or 'HTTP error'}: {message}"
    if status == 401:
        text += f"; check --token/{ENV_TOKEN} or --api-key/{ENV_API_KEY}"
    return text
