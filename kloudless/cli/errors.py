"""The error type client commands raise for problems they explain themselves."""

from __future__ import annotations

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
