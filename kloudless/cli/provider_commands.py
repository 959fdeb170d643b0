"""``kloudless apps provider set|list|remove``: the OAuth applications the operator registered
at Google, Microsoft, Dropbox and Box, with which the consent page connects their accounts
(see :mod:`kloudless.server.connectors.providers` and the guide "Connecting cloud accounts").

The client secret is read from a file or standard input, never from the command line (process
arguments are visible to every user of the machine), and never printed.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from typing import Any, Callable

#: The provider names (kept here so that ``--help`` needs no server import).
PROVIDER_NAMES = ("google", "microsoft", "dropbox", "box")


def _read_secret(args: argparse.Namespace) -> str:
    if args.client_secret_file:
        with open(args.client_secret_file, encoding="utf-8") as handle:
            return handle.readline().strip()
    return sys.stdin.readline().strip()


def cmd_apps_provider(
    args: argparse.Namespace, store_for: Callable[..., Any], first_app: Any
) -> int:
    """Run ``apps provider set|list|remove`` on the data dir's application."""
    from kloudless.server.connectors import providers
    from kloudless.server.errors import ApiError

    action = args.provider_command
    with closing(store_for(args)) as store:
        app_id = str(first_app(store, args)["id"])
        try:
            if action == "set":
                values: dict[str, Any] = {
                    "client_id": args.client_id,
                    "client_secret": _read_secret(args),
                    "scopes": args.scope or [],
                }
                values.update({e: getattr(args, e) for e in providers.ENDPOINTS})
                app = providers.build(args.provider, values)
                providers.save(store, app_id, app)
                print(f"{app.provider.title} is configured for {app_id} (client {app.client_id}).")
                print("Register this redirect URI at the provider: <server URL>/v1/oauth/callback")
            elif action == "remove":
                if not providers.remove(store, app_id, args.provider):
                    sys.stderr.write(f"kloudless: error: {args.provider} is not configured\n")
                    return 1
                print(f"{args.provider} removed (connected accounts keep working).")
            else:
                for app in providers.configured(store, app_id):
                    info = app.public()
                    changed = ", ".join(f"{e}={info[e]}" for e in app.overrides)
                    print(
                        f"{app.name}\tclient {app.client_id}\tscopes {' '.join(app.scopes) or '-'}"
                        + (f"\t{changed}" if changed else "")
                    )
        except ApiError as exc:
            sys.stderr.write(f"kloudless: error: {exc.message}\n")
            return 2
        except OSError as exc:
            sys.stderr.write(f"kloudless: error: cannot read the client secret: {exc}\n")
            return 2
    return 0


def add_commands(
    app_sub: Any,
    command: Callable[..., argparse.ArgumentParser],
    store_for: Callable[..., Any],
    first_app: Callable[..., Any],
) -> None:
    """Add ``provider set|list|remove`` under ``kloudless apps``.

    :param command: the admin command factory (``--data-dir``, ``--app``, missing-store
        errors). :param first_app: ``first_app(store, args)``: the application chosen.
    """

    def run(args: argparse.Namespace) -> int:
        return cmd_apps_provider(args, store_for, first_app)

    run.__doc__ = cmd_apps_provider.__doc__
    group = app_sub.add_parser(
        "provider",
        help="configure the OAuth apps used to connect Google, Microsoft, Dropbox and Box accounts",
        description="The consent page offers each configured provider; the server exchanges "
        "the authorization code and refreshes tokens with these client credentials. Register "
        "<server URL>/v1/oauth/callback as the redirect URI at the provider.",
    )
    sub = group.add_subparsers(dest="provider_command", metavar="ACTION", required=True)
    set_cmd = command(sub, "set", run, help="set a provider's client id, secret and scopes")
    set_cmd.add_argument("provider", choices=PROVIDER_NAMES, help="the provider")
    set_cmd.add_argument("--client-id", required=True, help="the OAuth client id (required)")
    secret = set_cmd.add_mutually_exclusive_group(required=True)
    secret.add_argument(
        "--client-secret-file",
        metavar="FILE",
        help="read the client secret from the first line of FILE (one of this or "
        "--client-secret-stdin is required)",
    )
    secret.add_argument(
        "--client-secret-stdin",
        action="store_true",
        help="read the client secret from standard input (default: off)",
    )
    set_cmd.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="a scope to ask for (repeatable; default: the provider's storage scopes)",
    )
    for name, text in (
        ("auth_url", "the authorization endpoint the browser is sent to"),
        ("token_url", "the token endpoint (code exchange and refresh)"),
        ("api_base", "where relative pass-through URIs go"),
        ("content_base", "the upload/download API host (Dropbox, Box)"),
    ):
        set_cmd.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            metavar="URL",
            help=f"{text} (default: the provider's own; e.g. a national cloud)",
        )
    command(sub, "list", run, help="list the configured providers (never the secrets)")
    remove = command(sub, "remove", run, help="forget a provider's client credentials")
    remove.add_argument("provider", choices=PROVIDER_NAMES, help="the provider")
