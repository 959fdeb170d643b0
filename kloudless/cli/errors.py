"""Exit codes, the error type client commands raise, and the one-line form of API errors."""

from __future__ import annotations

from typing import Any

from .env import ENV_API_KEY, ENV_TOKEN

#: Exit code for usage problems: bad arguments, missing credentials, ambiguous or unknown paths.
EXIT_USAGE = 2
#: Exit code for failures reported by the API or the network.
EXIT_FAILURE = 1
#: Exit code after Ctrl-C (128 + SIGINT), as shells do.
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure with a message meant for the user; printed as one line on stderr.

    :param message: what went wrong and, where possible, what to do about it.
    :param exit_code: the process exit code (default :data:`EXIT_USAGE`).
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def describe_api_error(exc: Any) -> str:
    """Summarise an API error in one line: status, error code, message and request id.

    :param exc: a :class:`kloudless.exceptions.APIException`.
    :returns: e.g. ``404 not_found: The file does not exist. (request id 5f2c...)``.
    """
    status = getattr(exc, "status", None)
    data = getattr(exc, "error_data", None)
    code = message = request_id = None
    if isinstance(data, dict):
        code = data.get("error_code")
        message = data.get("message")
        request_id = data.get("id")
    code = code or getattr(exc, "error_code", None)
    request_id = request_id or getattr(exc, "request_id", None)
    if not message:
        message = getattr(exc, "default_message", None) or type(exc).__name__
    text = f"{status or 'HTTP error'}"
    if code:
        text += f" {code}"
    text += f": {message}"
    if request_id:
        text += f" (request id {request_id})"
    if status == 401:
        text += f"; check --token/{ENV_TOKEN} or --api-key/{ENV_API_KEY}"
    return text
