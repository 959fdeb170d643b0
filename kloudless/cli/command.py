"""The frame every client command runs in: shared options, one error policy, logging.

A command is a function taking a :class:`~kloudless.cli.context.Context` and returning an exit
code. :func:`add_command` registers it as a sub-command with the shared connection options
(:func:`common_options`) and wraps it in :func:`guarded`, which turns every expected failure into
one ``kloudless: error: ...`` line on stderr and an exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, Callable

import requests

from kloudless import exceptions

from . import output
from .context import Context
from .env import ENV_ACCOUNT, ENV_API_KEY, ENV_BASE_URL, ENV_TOKEN
from .errors import (
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    CommandError,
    Interrupted,
    describe_api_error,
    exit_code_for_status,
)

#: A command: takes the context, returns the exit code.
Handler = Callable[[Context], int]


def guarded(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a command so every expected failure becomes one stderr line and an exit code.

    API errors, network errors, local file errors, missing credentials and Ctrl-C never show a
    traceback; anything else is a bug and propagates.

    :param handler: the command, taking a :class:`Context` and returning an exit code.
    :returns: a function taking the parsed arguments and returning the exit code.
    """

    def run_command(args: argparse.Namespace) -> int:
        ctx = Context(args)
        log_handlers = _start_logging(int(getattr(args, "verbose", 0) or 0))
        try:
            return int(handler(ctx) or 0)
        except Interrupted as exc:
            output.info(exc.message)
            return EXIT_INTERRUPTED
        except KeyboardInterrupt:
            output.info("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (e.g. `kloudless ls | head`): stop quietly.
            _silence_stdout()
            return EXIT_FAILURE
        except EXPECTED as exc:
            message, code = describe_failure(exc, ctx)
            output.error(message)
            return code
        finally:
            ctx.close()
            _stop_logging(log_handlers)

    run_command.__doc__ = handler.__doc__
    return run_command


#: The failures a command reports as one line (anything else is a bug and propagates).
EXPECTED = (CommandError, exceptions.KloudlessException, requests.RequestException, OSError)


def describe_failure(exc: BaseException, ctx: Context | None = None) -> tuple[str, int]:
    """One line and an exit code for an expected failure (see :data:`EXPECTED`).

    :param exc: the failure: a :class:`CommandError`, an SDK or ``requests`` error, or a local
        file error.
    :param ctx: the command's context, to name the server in network errors.
    :returns: ``(message, exit code)``.
    """
    base_url = ctx.base_url if ctx is not None else "the API server"
    if isinstance(exc, CommandError):
        return exc.message, exc.exit_code
    if isinstance(exc, exceptions.APIException):
        return describe_api_error(exc), exit_code_for_status(exc.status)
    if isinstance(exc, requests.Timeout):
        return f"the API server at {base_url} did not answer in time", EXIT_NETWORK
    if isinstance(exc, requests.ConnectionError):
        hint = _serve_hint(ctx) if ctx is not None else ""
        return f"cannot connect to the API server at {base_url}{hint}", EXIT_NETWORK
    if isinstance(exc, requests.RequestException):
        return f"request failed: {type(exc).__name__}", EXIT_NETWORK
    if isinstance(exc, exceptions.KloudlessException):
        # SDK-side errors such as InvalidParameter; network ones were handled above.
        return str(exc) or type(exc).__name__, EXIT_FAILURE
    if isinstance(exc, OSError):
        if isinstance(exc, FileNotFoundError):
            code = EXIT_NOT_FOUND
        else:
            code = EXIT_CONFLICT if isinstance(exc, FileExistsError) else EXIT_FAILURE
        return describe_os_error(exc), code
    return f"{type(exc).__name__}: {exc}", EXIT_FAILURE


def _serve_hint(ctx: Context) -> str:
    """:returns: a hint to start the local server when the API address is on this machine."""
    from urllib.parse import urlsplit

    from kloudless.util import is_loopback_host

    try:
        host = urlsplit(ctx.base_url).hostname or ""
    except ValueError:
        return ""
    return "; is `kloudless serve` running?" if host and is_loopback_host(host) else ""


def describe_os_error(exc: OSError) -> str:
    """:returns: a local file error in one line: what went wrong, and the file it concerns."""
    filename = getattr(exc, "filename", None)
    where = f": {os.fspath(filename)}" if filename else ""
    return f"{exc.strerror or exc}{where}"


def _start_logging(verbosity: int) -> list[logging.Handler]:
    """Route the SDK's log for one command; :func:`_stop_logging` undoes it.

    Retries always show (on the progress bar, or as one stderr line). ``-v`` adds the SDK's log
    on stderr at INFO (retries, resumes), ``-vv`` at DEBUG (every request), through the SDK's
    redacting filter, so tokens and keys never reach the terminal. Without ``-v`` nothing else
    of the SDK's log shows: the command reports what matters itself, once (Python would
    otherwise print WARNING records, such as the SDK's own resume hint, a second time).

    :returns: the handlers added.
    """
    from kloudless.util import RedactingFilter

    from .progress import RetryNotices

    sdk_logger = logging.getLogger("kloudless")
    handlers: list[logging.Handler] = [RetryNotices(lines=verbosity <= 0)]
    if verbosity > 0:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(f"{output.PROG}: %(levelname)s: %(message)s"))
        stream.addFilter(RedactingFilter())
        handlers.append(stream)
    for handler in handlers:
        sdk_logger.addHandler(handler)
    sdk_logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    return handlers


def _stop_logging(handlers: list[logging.Handler]) -> None:
    sdk_logger = logging.getLogger("kloudless")
    for handler in handlers:
        sdk_logger.removeHandler(handler)
        handler.close()
    sdk_logger.setLevel(logging.NOTSET)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


EPILOG = """\
credentials: --token or KLOUDLESS_TOKEN (a bearer token), or --api-key/KLOUDLESS_API_KEY
  with --account/KLOUDLESS_ACCOUNT_ID; server: --base-url or KLOUDLESS_BASE_URL
  (default http://localhost:8002). Files and folders are ids or paths such as /docs/a.txt."""


def common_options() -> argparse.ArgumentParser:
    """The options every client command accepts (credentials, server, ``--json``).

    Defaults are suppressed so options given before the command name on the main parser (if it
    defines them too) are not overwritten by the subcommand's defaults.

    :returns: a parent parser for ``add_parser(..., parents=[...])``.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--token", default=argparse.SUPPRESS, help=f"bearer token [{ENV_TOKEN}]")
    group.add_argument(
        "--api-key", default=argparse.SUPPRESS, help=f"application API key [{ENV_API_KEY}]"
    )
    group.add_argument(
        "--account",
        default=argparse.SUPPRESS,
        metavar="ID",
        help=f"account id, needed with an API key [{ENV_ACCOUNT}]",
    )
    group.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"API server [{ENV_BASE_URL}, default http://localhost:8002]",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="give up on a request after this long (default: the SDK's 10 s connect, 60 s read)",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="retries after network errors and 429/5xx answers (default 3; 0 disables)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log retries (-v) or every request (-vv) on stderr; secrets are redacted",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON for scripts instead of tables",
    )
    return parent


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help as written (descriptions and epilogs keep their line breaks), options one per line."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def add_command(
    subparsers: Any,
    name: str,
    handler: Handler,
    help_text: str,
    description: str | None = None,
    *,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Add a client command: the shared connection options, one error policy, its own usage.

    :param subparsers: what ``ArgumentParser.add_subparsers()`` (or :func:`add_group`) returned.
    :param name: the command's name.
    :param handler: the command (takes a :class:`Context`, returns the exit code).
    :param help_text: one line for the command list.
    :param description: the text of the command's ``--help`` (default: ``help_text``).
    :param parents: more parent parsers whose options the command takes.
    :returns: the command's parser, for its own arguments.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=EPILOG,
        parents=[common_options(), *parents],
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(func=guarded(handler))
    return parser


def add_group(subparsers: Any, name: str, help_text: str, description: str | None = None) -> Any:
    """Add a command group such as ``cal``, whose sub-commands come from :func:`add_command`.

    :param subparsers: what ``ArgumentParser.add_subparsers()`` returned.
    :param name: the group's name.
    :param help_text: one line for the command list.
    :param description: the text of the group's ``--help`` (default: ``help_text``).
    :returns: the group's sub-parsers, to pass to :func:`add_command`.
    """
    group = subparsers.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    commands = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    commands.required = True
    return commands


def response_data(response: Any) -> dict[str, Any]:
    """:returns: a copy of the JSON object of an SDK response ({} when it has none)."""
    data = getattr(response, "data", None)
    return dict(data) if isinstance(data, dict) else {}
