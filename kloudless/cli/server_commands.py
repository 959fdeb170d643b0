"""Server sub-commands: ``serve``, ``accounts create|list|delete|invite``, ``tokens create``,
``apps list|create|show``, ``apps redirect-uri add|list``, ``apps trusted-domain add|list|remove``,
``apps webhook ...``, ``apps provider ...`` (:mod:`~kloudless.cli.provider_commands`). They
work directly on a data dir (stop the server first or run them alongside: SQLite WAL handles
both).

Only ``serve`` creates a data dir; the admin commands refuse a folder that holds no server
store (``kloudless: error: no server data in DIR``), so a mistyped ``--data-dir`` never
starts a second, empty server state with a new application."""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import shlex
import sys
from contextlib import closing
from typing import Any

from . import provider_commands
from .argtypes import byte_count_or_zero, limit_count

DEFAULT_DATA_DIR = os.environ.get("KLOUDLESS_DATA_DIR", "kloudless-data")
ENV_TRANSFERS_PER_CREDENTIAL = "KLOUDLESS_TRANSFERS_PER_CREDENTIAL"
ENV_TRANSFERS_PER_ADDRESS = "KLOUDLESS_TRANSFERS_PER_ADDRESS"
ENV_CPU_AFFINITY = "KLOUDLESS_CPU_AFFINITY"


def _command(subparsers: Any, name: str, func: Any, **kwargs: Any) -> argparse.ArgumentParser:
    """:returns: a new sub-command ``name`` (``kwargs`` go to ``add_parser``) that runs
    ``func(args)`` on a data dir given by ``--data-dir``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(func=func if func is cmd_serve else _admin(func))
    parser.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help="server state directory (default: %(default)s or $KLOUDLESS_DATA_DIR)",
    )
    parser.add_argument(
        "--database-url",
        type=_database_url,
        default=None,
        metavar="URL",
        help="the server's database: sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
        f" (default: ${ENV_DATABASE_URL}, else SQLite in the data dir); a password belongs in"
        f" ${ENV_DATABASE_URL}, PGPASSWORD or ~/.pgpass, never on the command line",
    )
    return parser


#: The environment variable naming the server's database.
ENV_DATABASE_URL = "KLOUDLESS_DATABASE_URL"


def _database_url(text: str) -> str:
    """:returns: a ``--database-url`` value.
    :raises argparse.ArgumentTypeError: not sqlite:/// or postgresql://, or it holds a password
        (process arguments are visible to every user of the machine)."""
    scheme = text.split(":", 1)[0].lower()
    if not (text.startswith("sqlite:///") or scheme in ("postgresql", "postgres")):
        raise argparse.ArgumentTypeError(
            "expected sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
        )
    netloc = text.split("://", 1)[-1].split("/", 1)[0]
    if "@" in netloc and ":" in netloc.rsplit("@", 1)[0]:
        raise argparse.ArgumentTypeError(
            "a password on the command line is visible to every user of this machine: put the"
            f" URL in ${ENV_DATABASE_URL}, or the password in PGPASSWORD or ~/.pgpass"
        )
    return text


def database_url(args: argparse.Namespace) -> str | None:
    """:returns: ``--database-url``, else ``$KLOUDLESS_DATABASE_URL``, else None (SQLite in the
    data dir)."""
    return getattr(args, "database_url", None) or os.environ.get(ENV_DATABASE_URL) or None


def server_settings(args: argparse.Namespace, **changes: Any) -> Any:
    """:returns: the :class:`~kloudless.server.settings.Settings` of the data dir and database
    that ``args`` name, with ``changes``."""
    from kloudless.server.settings import Settings

    try:
        return Settings(data_dir=args.data_dir, database_url=database_url(args), **changes)
    except ValueError as exc:
        raise SystemExit(f"kloudless: error: ${ENV_DATABASE_URL}: {exc}") from None


class _NoServerData(Exception):
    """The data dir given to an admin command holds no server store."""


def _store(args: argparse.Namespace) -> Any:
    """:returns: the store of an existing data dir. Admin commands never create one (a typo
    in ``--data-dir`` must not silently start a new server state with a new application).
    :raises _NoServerData: the data dir holds no store yet."""
    from kloudless.server.connectors.registry import services
    from kloudless.server.store import Store, has_server_data

    settings = server_settings(args)
    path = settings.db_path
    if settings.uses_postgres:
        services()
        if not has_server_data(path, settings.database_url):
            raise _NoServerData(
                "no server data in that PostgreSQL database (start the server on it once with:"
                " kloudless serve --database-url URL)"
            )
        return Store(path, settings.database_url)
    if os.path.exists(args.data_dir) and not os.path.isdir(args.data_dir):
        raise _NoServerData(f"--data-dir {args.data_dir} is a file, not a folder")
    if not os.path.isfile(path):
        raise _NoServerData(
            f"no server data in {args.data_dir} (start it once with: "
            f"kloudless serve --data-dir {args.data_dir})"
        )
    services()  # connectors register their tables' migrations before the store opens
    return Store(path, settings.database_url)


def _admin(func: Any) -> Any:
    """Wrap an admin command so that a missing store is one error line (exit status 1)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except _NoServerData as exc:
            sys.stderr.write(f"kloudless: error: {exc}\n")
            return 1

    run.__doc__ = func.__doc__
    return run


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API server in the foreground."""
    try:
        from kloudless.server import serve
    except ImportError as exc:  # pragma: no cover - missing extra
        sys.stderr.write(
            f"kloudless: error: the server needs `pip install kloudless-compat[server]` ({exc})\n"
        )
        return 1
    settings = server_settings(
        args,
        blob_store=args.blob_store,
        host=args.host,
        port=args.port,
        threads=args.threads,
        workers=args.workers,
        cpu_affinity=args.cpu_affinity,
        rate_limit_per_minute=args.rate_limit,
        max_upload_bytes=args.max_upload_bytes,
        public_base_url=args.public_url,
        oauth_existing_accounts="none"
        if args.oauth_new_accounts_only
        else args.oauth_existing_accounts,
        allowed_hosts=list(args.allowed_host or []),
        connections_per_address=args.connections_per_address,
        transfers_per_credential=args.transfers_per_credential,
        transfers_per_address=args.transfers_per_address,
        account_quota_bytes=args.account_quota,
        inline_file_bytes=args.inline_file_bytes,
        allow_upstream=_allow_upstream(args),
        rclone_binary=args.rclone_binary,
        rclone_local_roots=[os.path.abspath(d) for d in args.rclone_allow_local or []],
    )
    from kloudless.server.blobs import BlobStoreError, blob_store
    from kloudless.server.runner import DataDirError

    try:
        if settings.blob_store:  # the data dir itself is checked when the server opens it
            blob_store(settings).check()
    except BlobStoreError as exc:
        sys.stderr.write(f"kloudless: error: blob store: {exc}\n")
        return 1
    try:
        serve(settings)
    except DataDirError as exc:
        sys.stderr.write(f"kloudless: error: {exc}\n")
        return 1
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        sys.stderr.write(
            f"kloudless: error: {args.host}:{args.port} is already in use"
            " (is another server running?)\n"
        )
        return 1
    return 0


def _cpu_affinity(text: str) -> str:
    """:returns: a ``--cpu-affinity`` value. :raises argparse.ArgumentTypeError: otherwise."""
    from kloudless.server.settings import CPU_AFFINITY

    if text not in CPU_AFFINITY:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(CPU_AFFINITY)}: {text!r}")
    return text


#: The most ``--inline-file-bytes`` takes: such a file is read into memory and written as one
#: database row.
MAX_INLINE_FILE_BYTES = 1024 * 1024


def _inline_file_bytes(text: str) -> int:
    value = byte_count_or_zero(text)
    if value > MAX_INLINE_FILE_BYTES:
        raise argparse.ArgumentTypeError(f"at most 1M: {text!r}")
    return value


def _workers(text: str) -> int:
    """:returns: a ``--workers`` count (1 to 64). :raises argparse.ArgumentTypeError: otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to 64: {text!r}")
    return value


def _allow_upstream(args: argparse.Namespace) -> list[str]:
    """:returns: the ``--allow-upstream`` entries, else those of ``$KLOUDLESS_ALLOW_UPSTREAM``."""
    from kloudless.server.outbound import ENV_ALLOW_UPSTREAM, entries_from_env, parse_allow

    given = getattr(args, "allow_upstream", None)
    if given:
        return list(given)
    entries = entries_from_env(os.environ.get(ENV_ALLOW_UPSTREAM))
    for entry in entries:
        try:
            parse_allow(entry)
        except ValueError as exc:
            raise SystemExit(f"kloudless: error: ${ENV_ALLOW_UPSTREAM}: {exc}") from None
    return entries


def _allow_entry(text: str) -> str:
    """:returns: ``text`` if it is a valid ``--allow-upstream`` entry.
    :raises argparse.ArgumentTypeError: otherwise."""
    from kloudless.server.outbound import parse_allow

    try:
        parse_allow(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_allow_upstream(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-upstream",
        action="append",
        type=_allow_entry,
        metavar="ENTRY",
        help="let the server connect to this non-public address for users (WebDAV/CalDAV "
        "accounts, pass-through, webhooks): HOST, HOST:PORT, an IP or a CIDR network "
        "(repeatable; default: $KLOUDLESS_ALLOW_UPSTREAM, comma-separated). Loopback, "
        "private and link-local addresses are refused otherwise",
    )


def _port(text: str) -> int:
    """:returns: ``text`` as a TCP port number (0 picks a free port).
    :raises argparse.ArgumentTypeError: not an integer in 0..65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {port}")
    return port


def _first_app(store: Any, args: argparse.Namespace | None = None) -> Any:
    """:returns: the application ``--app`` names, else the first one (created on an empty
    store, as ``serve`` would). :raises _NoServerData: no application ``--app``."""
    chosen = getattr(args, "app", None)
    if chosen:
        row = store.get_app(chosen)
        if row is None:
            raise _NoServerData(f"no application {chosen} (see: kloudless apps list)")
        return row
    apps = store.list_apps()
    if not apps:
        from kloudless.server.bootstrap import bootstrap
        from kloudless.server.runner import print_credentials

        creds = bootstrap(store)
        if creds is not None:
            print_credentials(creds, sys.stdout)
        apps = store.list_apps()
    return apps[0]


#: Options of ``accounts create`` that describe an upstream connection (DAV services).
_UPSTREAM_OPTIONS = (
    "url",
    "username",
    "password_file",
    "password_stdin",
    "primary_calendar",
    "addressbook",
)


class _UsageError(Exception):
    """A problem with the command's arguments, reported as one line (exit status 2)."""


def _read_password(args: argparse.Namespace) -> str:
    """:returns: the upstream password from ``--password-file``, ``--password-stdin`` or a
    prompt (only on a terminal); one trailing line break is removed. Never echoed."""
    if args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                text = handle.readline()
        except (OSError, UnicodeDecodeError) as exc:
            raise _UsageError(f"cannot read --password-file: {exc.__class__.__name__}") from None
    elif args.password_stdin:
        text = sys.stdin.readline()
    elif sys.stdin.isatty():
        import getpass

        text = getpass.getpass("Upstream password: ")
    else:
        raise _UsageError("give the password with --password-file FILE or --password-stdin")
    return text.rstrip("\r\n")


def _upstream_settings(args: argparse.Namespace) -> dict[str, Any]:
    """:returns: the connection settings given on the command line ({} for ``local``)."""
    given = [name for name in _UPSTREAM_OPTIONS if getattr(args, name) not in (None, False)]
    if args.service == "local":
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise _UsageError(f"{flags} only apply to --service webdav, caldav or carddav")
        return {}
    if not args.url or not args.username:
        raise _UsageError(f"--service {args.service} needs --url and --username")
    settings: dict[str, Any] = {
        "url": args.url,
        "username": args.username,
        "password": _read_password(args),
    }
    if args.primary_calendar is not None:
        settings["primary_calendar"] = args.primary_calendar
    if args.addressbook is not None:
        settings["addressbook"] = args.addressbook
    return settings


def _print_exports(what: str, account_id: int, token: str) -> None:
    """Print an account's new token as ``export`` lines for a POSIX shell, like ``serve`` does
    for its first-start credentials."""
    print(f"{what} (shown once, store it safely):")
    print(f"  export KLOUDLESS_ACCOUNT_ID={account_id}")
    print(f"  export KLOUDLESS_TOKEN={shlex.quote(token)}")


def _rclone_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """:returns: the rclone account settings of the command line, or None without any."""
    if not (args.rclone_remote or args.rclone_type):
        if args.rclone_config or args.rclone_option or args.rclone_path:
            raise _UsageError("give --rclone-remote NAME or --rclone-type TYPE")
        return None
    if args.rclone_remote and args.rclone_type:
        raise _UsageError("--rclone-remote and --rclone-type exclude each other")
    if args.service not in ("local", "rclone"):
        raise _UsageError("--rclone-* options create rclone accounts; drop --service")
    settings: dict[str, Any] = {}
    if args.rclone_path:
        settings["rclone_path"] = args.rclone_path
    if args.rclone_remote:
        if args.rclone_option:
            raise _UsageError("--rclone-option goes with --rclone-type")
        from kloudless.server.connectors.rclone_process import find_binary
        from kloudless.server.connectors.rclone_remotes import read_config_file

        sections = read_config_file(find_binary(args.rclone_binary), args.rclone_config)
        settings.update(rclone_remote=args.rclone_remote, rclone_config=sections)
        return settings
    if args.rclone_config:
        raise _UsageError("--rclone-config goes with --rclone-remote")
    options: dict[str, str] = {}
    for item in args.rclone_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _UsageError(f"--rclone-option {key or item!r}: expected KEY=VALUE")
        if value.startswith("@"):
            try:
                with open(value[1:], encoding="utf-8") as handle:
                    value = handle.read().rstrip("\r\n")
            except OSError as exc:
                problem = f"cannot read {value[1:]}: {exc.strerror}"
                raise _UsageError(f"--rclone-option {key}: {problem}") from None
        options[key] = value
    settings.update(rclone_type=args.rclone_type, rclone_options=options)
    return settings


def cmd_accounts_create(args: argparse.Namespace) -> int:
    """Create an account (checking upstream settings first) and a bearer token for it."""
    from kloudless.server import account_fields  # noqa: F401  (the 'admin' column)
    from kloudless.server.api.accounts import default_account_name
    from kloudless.server.connectors.registry import get_connector
    from kloudless.server.errors import ApiError
    from kloudless.server.outbound import OutboundPolicy

    try:
        rclone_settings = _rclone_settings(args)
        settings = rclone_settings if rclone_settings is not None else _upstream_settings(args)
    except _UsageError as exc:
        sys.stderr.write(f"kloudless: error: {exc}\n")
        return 2
    except ApiError as exc:  # the rclone config file could not be read
        sys.stderr.write(f"kloudless: {exc.message} ({exc.error_code})\n")
        return 1
    with closing(_store(args)) as store:
        try:
            # Same check as POST /v1/accounts: contacts the upstream, seals the password.
            policy = OutboundPolicy.from_entries(_allow_upstream(args))
            if rclone_settings is not None:
                config, service, label = _check_rclone(args, store, rclone_settings)
            else:
                connector = get_connector(args.service)
                config = connector.validate_config(settings, store, policy)
                service, label = connector.account_identity(config)
        except ApiError as exc:
            sys.stderr.write(f"kloudless: error: {exc.message} ({exc.error_code})\n")
            return 1
        app = _first_app(store, args)
        name = args.name or label or default_account_name(service, config)
        with store.transaction():
            account_id = store.create_account(app["id"], service, name[:255], config)
            if args.admin:
                store.execute("UPDATE accounts SET admin = 1 WHERE id = ?", (account_id,))
            token = store.create_token(app["id"], account_id)
        if args.json:
            created = {"id": account_id, "service": service, "account": name[:255]}
            print(json.dumps({**created, "admin": bool(args.admin), "token": token}, indent=2))
            return 0
        kind = "admin account" if args.admin else "account"
        print(f"Created {kind} {account_id} ({service}, {name[:255]!r}).")
        _print_exports("Its bearer token", account_id, token)
    return 0


def _check_rclone(
    args: argparse.Namespace, store: Any, settings: dict[str, Any]
) -> tuple[dict[str, Any], str, str | None]:
    """Try an rclone remote (the operator's command line: trusted, any local path) with a
    temporary rcd of the data dir. :returns: ``(config, service, default name)``."""
    from kloudless.server.connectors import rclone
    from kloudless.server.outbound import policy_for
    from kloudless.server.settings import Settings

    server = Settings(
        data_dir=args.data_dir,
        rclone_binary=args.rclone_binary,
        allow_upstream=_allow_upstream(args),
    )
    connector = rclone.CONNECTORS[0]
    try:
        config = connector.validate_config(
            settings, store, policy_for(server), settings=server, trusted=True
        )
    finally:
        rclone.close(server)
    service, label = connector.account_identity(config)
    return config, service, label


def cmd_accounts_list(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        rows = store.list_accounts()
        print(f"{'ID':>6}  {'SERVICE':<10} {'ACTIVE':<6}  NAME")
        for row in rows:
            print(
                f"{row['id']:>6}  {row['service']:<10} {'yes' if row['active'] else 'no':<6}"
                f"  {row['account']}"
            )
    return 0


def cmd_accounts_delete(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        row = store.get_account(args.account_id)
        if row is None or not store.delete_account(args.account_id):
            sys.stderr.write(f"kloudless: error: no account {args.account_id}\n")
            return 1
        from kloudless.server.connectors.registry import get_connector

        try:
            get_connector(str(row["service"])).on_account_deleted(
                store, args.account_id, args.data_dir
            )
        except Exception as exc:  # the account is gone either way; report leftovers
            sys.stderr.write(f"kloudless: error: cleanup failed: {exc}\n")
        print(f"Deleted account {args.account_id}.")
    return 0


def cmd_accounts_quota(args: argparse.Namespace) -> int:
    """``accounts quota ACCOUNT [BYTES|unlimited|default]``: show or set a storage quota."""
    from kloudless.server import quota

    with closing(_store(args)) as store:
        if store.get_account(args.account_id) is None:
            sys.stderr.write(f"kloudless: no account {args.account_id}\n")
            return 1
        value = args.bytes
        if value is not None:
            if value not in ("unlimited", "default") and not value.isdigit():
                sys.stderr.write("kloudless: a quota is bytes, 'unlimited' or 'default'\n")
                return 2
            limit = int(value) if value.isdigit() else None
            quota.set_limit(store, args.account_id, limit, default=value == "default")
        row = store.one("SELECT bytes FROM account_quotas WHERE account_id = ?", (args.account_id,))
        used = quota.used_bytes(store, args.account_id)
        if row is None:
            limit_text = "the server default (kloudless serve --account-quota)"
        elif row["bytes"] is None:
            limit_text = "unlimited"
        else:
            limit_text = f"{row['bytes']} bytes"
        print(f"Account {args.account_id}: quota {limit_text}; {used} bytes used.")
    return 0


def cmd_accounts_invite(args: argparse.Namespace) -> int:
    """``accounts invite ACCOUNT``: a one-time consent-page invitation code for the account."""
    from kloudless.server import invitations

    if not 0 < args.hours <= 24 * 30:
        sys.stderr.write("kloudless: error: --hours must be between 0 and 720\n")
        return 2
    with closing(_store(args)) as store:
        try:
            code = invitations.create(store, args.account_id, int(args.hours * 3600))
        except LookupError:
            sys.stderr.write(f"kloudless: error: no account {args.account_id}\n")
            return 1
        print(
            f"Invitation code for account {args.account_id} (shown once, valid "
            f"{args.hours:g} h, one use): {code}"
        )
    return 0


def cmd_tokens_create(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        row = store.get_account(args.account_id)
        if row is None:
            sys.stderr.write(f"kloudless: error: no account {args.account_id}\n")
            return 1
        token = store.create_token(row["app_id"], args.account_id)
        _print_exports(f"A new bearer token for account {args.account_id}", args.account_id, token)
    return 0


def cmd_apps_show(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        app = _first_app(store, args)
        print(f"Application {app['id']} ({app['name']}), created {app['created']}")
        if args.new_api_key:
            print(f"New API key (shown once): {store.create_api_key(app['id'])}")
        if args.app_token:
            print(f"Application-level token (shown once): {store.create_token(app['id'], None)}")
        accounts = store.list_accounts(app["id"])
        print(f"{len(accounts)} account(s): {', '.join(str(a['id']) for a in accounts) or '-'}")
    return 0


def _app_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "created": row["created"],
    }


def cmd_apps_list(args: argparse.Namespace) -> int:
    """``apps list``: every application of the server (one per line, or ``--json``)."""
    with closing(_store(args)) as store:
        rows = store.list_apps()
        counts = {str(r["id"]): len(store.list_accounts(str(r["id"]))) for r in rows}
    if args.json:
        items = [dict(_app_fields(r), accounts=counts[str(r["id"])]) for r in rows]
        print(json.dumps(items, indent=2))
        return 0
    for row in rows:
        print(f"{row['id']}  {counts[str(row['id'])]:>4} account(s)  {row['name']}")
    return 0


def cmd_apps_create(args: argparse.Namespace) -> int:
    """``apps create NAME``: a new application and its first API key (shown once)."""
    if not args.name.strip() or len(args.name) > 1000 or len(args.description) > 1000:
        sys.stderr.write("kloudless: error: give a name (and a description) of 1-1000 chars\n")
        return 2
    with closing(_store(args)) as store:
        with store.transaction():
            app_id, api_key = store.create_app(args.name.strip())
            store.execute(
                "UPDATE apps SET description = ? WHERE id = ?", (args.description, app_id)
            )
        row = store.get_app(app_id)
    if args.json:
        print(json.dumps(dict(_app_fields(row), api_key=api_key), indent=2))
        return 0
    print(f"Created application {app_id} ({row['name']}); its API key (shown once):")
    print(f"  export KLOUDLESS_APP_ID={shlex.quote(app_id)}")
    print(f"  export KLOUDLESS_API_KEY={shlex.quote(api_key)}")
    return 0


def cmd_apps_trusted_domain(args: argparse.Namespace) -> int:
    """``apps trusted-domain add|list|remove ORIGIN``: the web origins the application's
    browser code runs on (CORS and the popup flow's ``postMessage``; see
    :mod:`kloudless.server.trusted_domains`)."""
    from kloudless.server import trusted_domains

    action = args.trusted_command
    origin = ""
    if action != "list":
        try:
            origin = trusted_domains.normalize(args.origin)
        except ValueError as exc:
            sys.stderr.write(f"kloudless: error: {exc}\n")
            return 2
    with closing(_store(args)) as store:
        app_id = str(_first_app(store, args)["id"])
        if action == "add":
            try:
                trusted_domains.add(store, app_id, origin)
            except OverflowError as exc:
                sys.stderr.write(f"kloudless: error: {exc}\n")
                return 2
            print(f"Trusted domain of {app_id}: {origin}")
        elif action == "remove":
            if not trusted_domains.remove(store, app_id, origin):
                sys.stderr.write(f"kloudless: error: {origin} is not a trusted domain\n")
                return 1
            print(f"No longer trusted by {app_id}: {origin}")
        else:
            for row in trusted_domains.list_for(store, app_id):
                print(row["origin"])
    return 0


def cmd_apps_redirect_uri(args: argparse.Namespace) -> int:
    """``apps redirect-uri add URL`` / ``apps redirect-uri list``: the application's registered
    OAuth redirect URIs (needed for any non-loopback redirect URI, see
    :mod:`kloudless.server.redirect_uris`)."""
    import json

    from kloudless.server.redirect_uris import problem

    with closing(_store(args)) as store:
        app = _first_app(store, args)
        uris: list[str] = json.loads(app["redirect_uris"] or "[]")
        if args.redirect_command == "add":
            reason = problem(args.url)  # http(s) with a host or an app scheme, no javascript:
            if reason is not None:
                sys.stderr.write(f"kloudless: error: {reason}\n")
                return 2
            if args.url not in uris:
                uris.append(args.url)
                store.execute(
                    "UPDATE apps SET redirect_uris = ? WHERE id = ?", (json.dumps(uris), app["id"])
                )
            print(f"Registered redirect URI for {app['id']}: {args.url}")
        else:
            for uri in uris:
                print(uri)
    return 0


def cmd_apps_webhook(args: argparse.Namespace) -> int:
    """``apps webhook set URL|show|remove|rotate-key``: the application's webhook (see
    :mod:`kloudless.server.webhooks`). ``set`` validates the URL with a ping right away."""
    from kloudless.server import webhooks
    from kloudless.server.errors import ApiError
    from kloudless.server.outbound import OutboundPolicy

    store = _store(args)  # after the import above, so the webhooks table exists
    try:
        app_id = str(_first_app(store, args)["id"])
        action = args.webhook_command
        if action == "set":
            chosen = None
            if args.signing_key_stdin:  # the key never appears in the process arguments
                chosen = webhooks.check_signing_key(sys.stdin.readline().strip())
            _, key = webhooks.configure_webhook(store, app_id, args.url)
            if chosen is not None:
                webhooks.set_signing_key(store, app_id, chosen)
                key = None
            policy = OutboundPolicy.from_entries(_allow_upstream(args))
            checked = webhooks.validate_webhook(
                store, app_id, sender=functools.partial(webhooks.send_http, policy=policy)
            )
            if key is not None:
                print(f"Webhook signing key (shown once, give it to your receiver): {key}")
            detail = f" ({checked.error})" if checked.error else ""
            print(f"Webhook {checked.url}: {checked.state}{detail}")
            return 0 if checked.state == webhooks.VALID else 1
        if action == "rotate-key":
            key = webhooks.rotate_signing_key(store, app_id)
            print(f"New webhook signing key (shown once): {key}")
        elif action == "remove":
            print("Webhook removed." if webhooks.remove_webhook(store, app_id) else "No webhook.")
        else:
            config = webhooks.get_webhook(store, app_id)
            print(f"Webhook {config.url}: {config.state}" if config else "No webhook.")
    except ApiError as exc:
        sys.stderr.write(f"kloudless: error: {exc.message}\n")
        return 2
    finally:
        store.close()
    return 0


def _add_app_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app",
        metavar="APP_ID",
        help="the application (default: the first one; see kloudless apps list)",
    )


def _app_command(subparsers: Any, name: str, func: Any, **kwargs: Any) -> argparse.ArgumentParser:
    """:returns: an admin command (:func:`_command`) with the ``--app`` option."""
    parser = _command(subparsers, name, func, **kwargs)
    _add_app_option(parser)
    return parser


def register(subparsers: Any) -> None:
    """Add the server sub-commands to the ``kloudless`` parser."""
    serve = _command(subparsers, "serve", cmd_serve, help="run the local Kloudless API server")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    serve.add_argument("--port", type=_port, default=8002, help="port (default %(default)s)")
    serve.add_argument(
        "--threads", type=int, default=8, help="worker threads (default %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="server processes sharing the port, data dir and database (default %(default)s;"
        " more than 1 needs Linux or macOS)",
    )
    serve.add_argument(
        "--cpu-affinity",
        type=_cpu_affinity,
        # A string default goes through `type`, so a bad $ENV value is a usage error.
        default=os.environ.get(ENV_CPU_AFFINITY, "off"),
        metavar="off|auto",
        help="auto: each worker process (or the one process) and its threads on a core of its"
        f" own, in turn over the cores this process may use (default %(default)s, or"
        f" ${ENV_CPU_AFFINITY}; Linux; see the deployment guide)",
    )
    serve.add_argument(
        "--rate-limit",
        type=int,
        default=0,
        metavar="N",
        help="requests per minute per credential (0 = off)",
    )
    serve.add_argument(
        "--max-upload-bytes",
        type=int,
        default=5 * 1024**3,
        metavar="N",
        help="largest upload accepted, in bytes (default %(default)s: 5 GiB)",
    )
    serve.add_argument(
        "--public-url", default=None, help="base URL used in hrefs (when behind a reverse proxy)"
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="also answer requests for this Host name (repeatable; '*' = any). The bound host, "
        "localhost, 127.0.0.1, [::1] and the --public-url host are always accepted",
    )
    _add_allow_upstream(serve)
    serve.add_argument(
        "--blob-store",
        default=os.environ.get("KLOUDLESS_BLOB_STORE", ""),
        metavar="URL",
        help="where file contents live: file:///path or s3://bucket/prefix (credentials and "
        "endpoint from the AWS_* variables; needs kloudless-compat[s3]); default: "
        "$KLOUDLESS_BLOB_STORE, else the data dir",
    )
    serve.add_argument(
        "--account-quota",
        type=int,
        default=None,
        metavar="BYTES",
        help="storage quota of each local account without its own (kloudless accounts quota); "
        "default: unlimited",
    )
    serve.add_argument(
        "--inline-file-bytes",
        type=_inline_file_bytes,
        default=16 * 1024,
        metavar="BYTES",
        help="local files of at most this size (e.g. 16K, at most 1M) keep their bytes in the "
        "database, durable in one commit (default %(default)s; 0 = every file in the blob store)",
    )
    serve.add_argument(
        "--connections-per-address",
        type=int,
        default=100,
        metavar="N",
        help="most open connections from one client address (default %(default)s; 0 = no limit; "
        "raise it behind a "
        "reverse proxy, whose connections all come from one address)",
    )
    for what, env, default, note in (
        ("credential", ENV_TRANSFERS_PER_CREDENTIAL, 8, "one token or API key"),
        ("address", ENV_TRANSFERS_PER_ADDRESS, 32, "one client address, public links too"),
    ):
        serve.add_argument(
            f"--transfers-per-{what}",
            type=limit_count,
            # A string default goes through `type`, so a bad $ENV value is a usage error.
            default=os.environ.get(env, str(default)),
            metavar="N",
            help=f"most uploads, and apart from them downloads, running at once with {note} "
            f"(default %(default)s, or ${env}; 0 = no limit); more get 429 + Retry-After",
        )
    serve.add_argument(
        "--oauth-existing-accounts",
        choices=("invited", "any", "none"),
        default="invited",
        help="which existing accounts the OAuth consent page may connect: 'invited' (default) "
        "only with an invitation code from 'kloudless accounts invite' (or a DAV server login "
        "entered again), 'any' lists every account to whoever opens the page (single-user "
        "set-ups only), 'none' only creates new accounts",
    )
    serve.add_argument(
        "--rclone-binary",
        metavar="PATH",
        help="the rclone executable (default: the one of kloudless[rclone], else rclone on PATH)",
    )
    serve.add_argument(
        "--rclone-allow-local",
        action="append",
        metavar="DIR",
        help="let rclone remotes created through the API use local paths under DIR (repeatable)",
    )
    serve.add_argument(
        "--oauth-new-accounts-only",
        action="store_true",
        help="same as --oauth-existing-accounts none",
    )

    accounts = subparsers.add_parser("accounts", help="manage accounts on a data dir")
    acc_sub = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    create = _command(
        acc_sub,
        "create",
        cmd_accounts_create,
        help="create an account (local, or a WebDAV/CalDAV/CardDAV server) and a token",
        description="Create an account and print a bearer token for it. For --service webdav, "
        "caldav or carddav the settings are checked against the server first, and the password is "
        "stored sealed (it is never printed).",
    )
    create.add_argument(
        "--name", default=None, help="display name (default: 'local', or user@host for DAV)"
    )
    create.add_argument(
        "--service",
        default="local",
        choices=("local", "webdav", "caldav", "carddav"),
        help="service (default %(default)s)",
    )
    create.add_argument("--url", help="DAV server URL (webdav: the folder to use as root)")
    create.add_argument("--username", help="DAV user name")
    secret = create.add_mutually_exclusive_group()
    secret.add_argument("--password-file", metavar="FILE", help="read the password from FILE")
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create.add_argument(
        "--admin",
        action="store_true",
        help="an admin account: it has a team (kloudless team ...) and may act as its users",
    )
    create.add_argument("--json", action="store_true", help="print the new account as JSON")
    _add_app_option(create)
    create.add_argument(
        "--primary-calendar",
        metavar="NAME",
        help="caldav: the calendar collection used as the primary calendar",
    )
    create.add_argument(
        "--addressbook",
        metavar="NAME",
        help="carddav: the address book collection to use (default: the first one)",
    )
    _add_allow_upstream(create)
    rclone = create.add_argument_group(
        "rclone remotes (service ids of the remote's type: gdrive, dropbox, s3, sftp, ...)"
    )
    rclone.add_argument(
        "--rclone-remote", metavar="NAME", help="import the remote NAME from an rclone config"
    )
    rclone.add_argument(
        "--rclone-config",
        metavar="FILE",
        help="the rclone config file (default: rclone's own; RCLONE_CONFIG_PASS decrypts it)",
    )
    rclone.add_argument(
        "--rclone-type", metavar="TYPE", help="create a remote of this rclone backend type"
    )
    rclone.add_argument(
        "--rclone-option",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the --rclone-type remote (repeatable); KEY=@FILE reads the value "
        "from FILE (keeps secrets out of the process list)",
    )
    rclone.add_argument(
        "--rclone-path", metavar="SUBDIR", help="the remote's folder used as the account's root"
    )
    rclone.add_argument(
        "--rclone-binary", metavar="PATH", help="the rclone executable (as for kloudless serve)"
    )
    _command(acc_sub, "list", cmd_accounts_list, help="list accounts")
    invite = _command(
        acc_sub,
        "invite",
        cmd_accounts_invite,
        help="issue a one-time code that lets its holder connect an existing account on the "
        "consent page",
        description="Print a one-time invitation code for an existing account. Give it to the "
        "account's owner: on the application's consent page they choose 'An account I was "
        "invited to connect' and enter it. The code works once, for this account's "
        "application only, and expires.",
    )
    invite.add_argument(
        "account_id", type=int, metavar="ACCOUNT", help="the id of the account the code connects"
    )
    invite.add_argument(
        "--hours",
        type=float,
        default=24.0,
        help="hours until the code expires (default %(default)s)",
    )
    quota_cmd = _command(
        acc_sub,
        "quota",
        cmd_accounts_quota,
        help="show or set a local account's storage quota (writes past it answer 507)",
    )
    quota_cmd.add_argument("account_id", type=int, metavar="ACCOUNT", help="the account's id")
    quota_cmd.add_argument(
        "bytes",
        nargs="?",
        metavar="BYTES|unlimited|default",
        help="the new quota; 'default' follows kloudless serve --account-quota",
    )
    delete = _command(
        acc_sub, "delete", cmd_accounts_delete, help="delete an account and its files"
    )
    delete.add_argument("account_id", type=int, metavar="ACCOUNT", help="the account's id")

    tokens = subparsers.add_parser("tokens", help="manage bearer tokens")
    tok_sub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    tcreate = _command(
        tok_sub, "create", cmd_tokens_create, help="create a bearer token for an account"
    )
    tcreate.add_argument("account_id", type=int, metavar="ACCOUNT", help="the account's id")

    apps = subparsers.add_parser("apps", help="list, create and show applications")
    app_sub = apps.add_subparsers(dest="apps_command", metavar="ACTION", required=True)
    listing = _command(app_sub, "list", cmd_apps_list, help="list the server's applications")
    listing.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    made = _command(
        app_sub, "create", cmd_apps_create, help="create an application and its first API key"
    )
    made.add_argument("name", metavar="NAME", help="the application's name")
    made.add_argument(
        "--description", default="", help="the application's description (default: none)"
    )
    made.add_argument(
        "--json", action="store_true", help="print the application and its key as JSON"
    )
    show = _command(app_sub, "show", cmd_apps_show, help="show the application id and its accounts")
    _add_app_option(show)
    show.add_argument("--new-api-key", action="store_true", help="also create an API key")
    show.add_argument(
        "--app-token", action="store_true", help="also create an application-level token (meta API)"
    )
    redirect = app_sub.add_parser(
        "redirect-uri",
        help="manage the application's registered OAuth redirect URIs",
        description="Once any URI is registered, OAuth accepts only registered redirect_uri "
        "values; until then only loopback ones (localhost, 127.0.0.1, [::1]). A URI is "
        "http(s) with a host or an app scheme (com.example.app:/cb), never javascript: or data:.",
    )
    red_sub = redirect.add_subparsers(dest="redirect_command", metavar="ACTION", required=True)
    radd = _command(red_sub, "add", cmd_apps_redirect_uri, help="register a redirect URI")
    radd.add_argument("url", metavar="URL", help="the redirect URI, e.g. https://app.example/cb")
    _add_app_option(radd)
    _add_app_option(
        _command(red_sub, "list", cmd_apps_redirect_uri, help="list the registered redirect URIs")
    )
    trusted = app_sub.add_parser(
        "trusted-domain",
        help="manage the web origins the application's browser code runs on",
        description="Browser pages on a trusted domain (an origin: scheme://host[:port]) may "
        "call the API with the application's credentials (CORS) and receive the token of the "
        "consent page's popup flow (postMessage). None is trusted by default.",
    )
    tru_sub = trusted.add_subparsers(dest="trusted_command", metavar="ACTION", required=True)
    for name, text in (("add", "trust an origin"), ("remove", "stop trusting an origin")):
        sub = _command(tru_sub, name, cmd_apps_trusted_domain, help=text)
        sub.add_argument("origin", metavar="ORIGIN", help="e.g. https://app.example.com")
        _add_app_option(sub)
    _add_app_option(
        _command(tru_sub, "list", cmd_apps_trusted_domain, help="list the trusted domains")
    )
    webhook = app_sub.add_parser(
        "webhook",
        help="manage the application's webhook URL and signing key",
        description="Notifications are signed with a webhook signing key (not the API key); "
        "receivers verify it with kloudless.webhooks.verify_signature.",
    )
    hook_sub = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    for name, text in (
        ("set", "set the webhook URL and validate it with a ping"),
        ("show", "show the webhook URL and its status"),
        ("remove", "remove the webhook and its signing key"),
        ("rotate-key", "replace the signing key (receivers accept old and new meanwhile)"),
    ):
        _add_app_option(_command(hook_sub, name, cmd_apps_webhook, help=text))
    provider_commands.add_commands(app_sub, _app_command, _store, _first_app)
    hook_sub.choices["set"].add_argument(
        "url", metavar="URL", help="where the server POSTs notifications"
    )
    hook_sub.choices["set"].add_argument(
        "--signing-key-stdin",
        action="store_true",
        help="sign with a key read from standard input (e.g. the API key an existing "
        "Kloudless receiver verifies with) instead of a new whsec_ key",
    )
    _add_allow_upstream(hook_sub.choices["set"])
