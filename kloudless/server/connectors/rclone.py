"""The ``rclone`` connector: the storage API over every rclone backend.

An account made from an rclone remote gets the Kloudless service id of the remote's type
(``gdrive``, ``dropbox``, ``s3``, ``sftp``, ...; see
:data:`~kloudless.server.connectors.rclone_remotes.SERVICES`), else ``rclone_<type>``; every
such service is served by this connector. Accounts are created with ``service`` ``rclone`` (or
one of those ids) and:

* ``rclone_type`` + ``rclone_options`` (``{"host": ..., "user": ..., "pass": ...}``: plain
  values, rclone obscures its passwords), or
* ``rclone_remote`` + ``rclone_config``: a remote of an rclone config, given as the file's text
  or as the object ``rclone config dump`` prints (``kloudless accounts create --rclone-remote``
  reads the file on the operator's machine);
* optionally ``rclone_path``: the folder of the remote that is the account's root.

The remote is tried (its root listed) before the account exists; its sections are sealed in the
account's config (see :mod:`~kloudless.server.connectors.rclone_remotes`), and the rcd
(:mod:`~kloudless.server.connectors.rclone_process`) gets them on the account's first use.
Tokens that rclone refreshes (OAuth backends) are read back from the rcd and sealed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from typing import Any

from kloudless.server.connectors.base import AccountEnv, Connector, StorageBackend
from kloudless.server.connectors.rclone_ids import IdMap
from kloudless.server.connectors.rclone_process import RcloneDaemon, close_daemons, daemon_for
from kloudless.server.connectors.rclone_rc import RcClient, RcError
from kloudless.server.connectors.rclone_remotes import (
    RemoteSpec,
    all_service_ids,
    check,
    check_policy,
    define,
    load_spec,
    providers,
    read_config_file,
    secret_values,
    service_for,
    service_name,
    spec_from_config,
    spec_from_options,
    stored_config,
    undefine,
    valid_name,
)
from kloudless.server.connectors.rclone_storage import RcloneStorage
from kloudless.server.connectors.webdav_snapshots import Snapshots
from kloudless.server.errors import ApiError, invalid_parameters
from kloudless.server.outbound import DEFAULT_POLICY, OutboundError, OutboundPolicy
from kloudless.server.settings import Settings
from kloudless.server.store import Store

#: rclone type for each Kloudless service id this connector serves (for ``service: "sftp"``).
_TYPES = {
    "gdrive": "drive",
    "skydrive": "onedrive",
    "onedrivebiz": "onedrive",
    "sharepoint": "onedrive",
    "s3_compatible": "s3",
    "aliyun_oss": "s3",
    "azure": "azureblob",
}


class _Session:
    """This process's rcd for one data dir, with its client and per-account state."""

    def __init__(self, daemon: RcloneDaemon) -> None:
        self.daemon = daemon
        self.rc = RcClient(daemon)
        self.lock = threading.Lock()
        #: (account id, digest of the sealed remote) -> rcd remote name
        self.remotes: dict[tuple[int, str], str] = {}
        #: rcd remote name -> operations/fsinfo answer
        self.info: dict[str, dict[str, Any]] = {}
        self._sensitive: dict[str, set[str]] | None = None

    def sensitive(self) -> dict[str, set[str]]:
        if self._sensitive is None:
            self._sensitive = providers(self.rc)
        return self._sensitive


_SESSIONS: dict[int, _Session] = {}
_SESSIONS_LOCK = threading.Lock()
#: The settings of each data dir's server (rclone binary, local roots, outbound policy), for
#: the account checks that get only the store.
_SETTINGS: dict[str, Settings] = {}


def configure(settings: Settings) -> None:
    """Remember a server's settings (called when the server starts; starts nothing)."""
    _SETTINGS[os.path.abspath(settings.data_dir)] = settings


def close(settings: Settings) -> None:
    """Stop the rcd of a server's data dir (``Core.close()``)."""
    with _SESSIONS_LOCK:
        for key, session in list(_SESSIONS.items()):
            if session.daemon.state_dir == os.path.join(
                os.path.abspath(settings.data_dir), "rclone"
            ):
                session.rc.close()
                del _SESSIONS[key]
    close_daemons(settings.data_dir)


def settings_for(store: Store) -> Settings:
    """:returns: the settings of the server using ``store`` (defaults when it never started)."""
    data_dir = os.path.dirname(os.path.abspath(store.path))
    return _SETTINGS.get(data_dir) or Settings(data_dir=data_dir)


def session_for(settings: Settings) -> _Session:
    """:returns: the rcd session of the server's data dir (the rcd starts on first call)."""
    daemon = daemon_for(settings.data_dir, settings.rclone_binary)
    with _SESSIONS_LOCK:
        current = _SESSIONS.get(id(daemon))
        if current is None or current.daemon is not daemon:
            current = _Session(daemon)
            _SESSIONS[id(daemon)] = current
        return current


def _digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(str(config.get("rclone_sealed", "")).encode()).hexdigest()[:10]


def _save_refreshed_token(env: AccountEnv, session: _Session, name: str) -> bool:
    """Seal again a token rclone refreshed (OAuth backends), so restarts keep it.

    :returns: whether the account's stored config changed."""
    config = env.config
    spec = load_spec(config, env.store.server_secret())
    main = spec.sections[spec.main]
    if "token" not in main or spec.path:
        return False
    try:
        current = session.rc.call("config/get", {"name": name}).get("token")
    except RcError:
        return False
    if not isinstance(current, str) or current == main["token"]:
        return False
    main["token"] = current
    session.daemon.redact.add(secret_values(spec, session.sensitive()))
    new_config = dict(config, **stored_config(spec, env.store.server_secret()))
    env.store.execute(
        "UPDATE accounts SET config = ? WHERE id = ?",
        (json.dumps(new_config), env.account_id),
    )
    with session.lock:
        session.remotes[(env.account_id, _digest(new_config))] = name
    return True


def read_back_token(env: AccountEnv) -> bool:
    """Read back a token rclone refreshed for the account, when this process's rcd runs and
    has the account's remote (nothing is started otherwise).

    :returns: whether the account's stored config changed (reload the row)."""
    state_dir = os.path.join(os.path.abspath(env.settings.data_dir), "rclone")
    with _SESSIONS_LOCK:
        found = [s for s in _SESSIONS.values() if s.daemon.state_dir == state_dir]
    for session in found:
        name = session.remotes.get((env.account_id, _digest(env.config)))
        if name is not None:
            return _save_refreshed_token(env, session, name)
    return False


class RcloneConnector(Connector):
    """Storage over an rclone remote, under one service id.

    :param service: the service id (``sftp``, ``rclone_crypt``, ... or ``rclone`` for the
        creation alias).
    """

    apis: tuple[str, ...] = ("storage", "events")

    def __init__(self, service: str) -> None:
        self.service = service
        self.service_name = "rclone" if service == "rclone" else service_name(service)

    def implied_type(self) -> str | None:
        """:returns: the rclone type a service id stands for (``gdrive`` -> ``drive``), or None
        for the ``rclone`` alias."""
        if self.service == "rclone":
            return None
        if self.service.startswith("rclone_"):
            return self.service[len("rclone_") :]
        return _TYPES.get(self.service, self.service)

    # -- accounts --------------------------------------------------------------------------------

    def _remote(self, env: AccountEnv) -> tuple[_Session, str]:
        """:returns: the session and the rcd remote of an account, defined on first use."""
        session = session_for(env.settings)
        config = env.config
        key = (env.account_id, _digest(config))
        with session.lock:
            name = session.remotes.get(key)
            if name is None:
                spec = load_spec(config, env.store.server_secret())
                session.daemon.redact.add(secret_values(spec, session.sensitive()))
                prefix = f"k{env.account_id}_{key[1]}"
                try:
                    name = define(session.rc, spec, prefix, obscure=False)
                except RcError as exc:
                    raise ApiError(
                        500, "internal_error", f"rclone refused the stored remote: {exc.message}"
                    ) from None
                for old_key in [k for k in session.remotes if k[0] == env.account_id]:
                    undefine(session.rc, spec, f"k{old_key[0]}_{old_key[1]}")
                    del session.remotes[old_key]
                session.remotes[key] = name
        self._save_refreshed_token(env, session, name)
        return session, name

    def _save_refreshed_token(self, env: AccountEnv, session: _Session, name: str) -> None:
        _save_refreshed_token(env, session, name)

    def storage(self, env: AccountEnv) -> StorageBackend | None:
        session, name = self._remote(env)
        info = session.info.get(name)
        if info is None:
            try:
                info = session.rc.call("operations/fsinfo", {"fs": f"{name}:"})
            except RcError:
                info = {}
            session.info[name] = info
        return RcloneStorage(
            session.rc,
            name,
            IdMap(env.store, env.account_id),
            info,
            Snapshots(env.store, env.account_id),
            env.activity,
        )

    def account_identity(self, config: dict[str, Any]) -> tuple[str, str | None]:
        """:returns: ``(service id of the remote's type, user@host or the remote's name)``."""
        label = config.get("rclone_label")
        return str(config.get("rclone_service", self.service)), label if isinstance(
            label, str
        ) else None

    def validate_config(
        self,
        config: dict[str, Any],
        store: Store | None = None,
        policy: OutboundPolicy = DEFAULT_POLICY,
        settings: Settings | None = None,
        trusted: bool = False,
    ) -> dict[str, Any]:
        """Build the remote from the settings, try it and return the config to store.

        :param config: ``rclone_type`` + ``rclone_options``, or ``rclone_remote`` +
            ``rclone_config``; optional ``rclone_path``.
        :param policy: the outbound policy every host option must pass (``--allow-upstream``).
        :param settings: the server settings (default: those of the store's server).
        :param trusted: the operator's command line: local paths, local files and programs
            are allowed (the outbound policy still applies).
        :raises ApiError: 400 for bad settings, 403 for a remote the policy refuses, the
            upstream's error (401 for rejected credentials, ...) when the remote does not work.
        """
        if store is None:
            raise invalid_parameters("rclone accounts need the server's store.")
        if settings is None:
            settings = settings_for(store)
        session = session_for(settings)
        path = config.get("rclone_path")
        if config.get("rclone_remote") is not None:
            sections = self._sections(session, config.get("rclone_config"))
            spec = spec_from_config(sections, valid_name(config["rclone_remote"]), path)
            plain = False
        else:
            rtype = config.get("rclone_type") or self.implied_type()
            spec = spec_from_options(rtype, config.get("rclone_options"), path)
            plain = True
        if spec.type == "local" and not os.path.isabs(spec.path or ""):
            raise invalid_parameters("A 'local' remote needs an absolute 'rclone_path'.")
        check_policy(
            spec,
            settings.rclone_local_roots,
            trusted=trusted,
            check_host=lambda host, port, url: _check_host(policy, host, port, url),
        )
        session.daemon.redact.add(secret_values(spec, session.sensitive()))
        checked = check(session.rc, spec, obscure=plain)
        session.daemon.redact.add(secret_values(checked, session.sensitive()))
        main = checked.sections[checked.main]
        service, _ = service_for(checked.type, main)
        result = stored_config(checked, store.server_secret())
        result["rclone_service"] = service
        result["rclone_label"] = _label(checked, config.get("rclone_remote"))
        return result

    def import_config(
        self, fields: dict[str, Any], store: Store, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A Kloudless import of an S3 account (``token`` = access key id, ``token_secret`` =
        secret access key; ``domain`` or ``endpoint`` for S3-compatible stores, ``region``,
        ``bucket`` or ``rclone_path``), stored untried with ``"imported": true``.

        :raises ApiError: 400 for other services (their OAuth tokens belong to another OAuth
            client than rclone's: connect them with ``rclone config`` and import the remote).
        """
        if self.service not in ("s3", "s3_compatible", "aliyun_oss"):
            return super().import_config(fields, store, previous)
        key, secret = fields.get("token"), fields.get("token_secret")
        if not isinstance(key, str) or not key or not isinstance(secret, str) or not secret:
            raise invalid_parameters(
                "An S3 import needs 'token' (access key id) and 'token_secret'."
            )
        options = {"access_key_id": key, "secret_access_key": secret}
        endpoint = fields.get("endpoint") or fields.get("domain")
        options["provider"] = "Other" if endpoint else "AWS"
        if self.service == "aliyun_oss":
            options["provider"] = "Alibaba"
        if isinstance(endpoint, str) and endpoint:
            options["endpoint"] = endpoint
        if isinstance(fields.get("region"), str):
            options["region"] = fields["region"]
        spec = spec_from_options("s3", options, fields.get("rclone_path") or fields.get("bucket"))
        result = stored_config(spec, store.server_secret())
        result.update(rclone_service=self.service, rclone_label=f"{key[:8]}... (s3)", imported=True)
        return result

    def _sections(self, session: _Session, given: Any) -> dict[str, dict[str, str]]:
        if isinstance(given, dict):
            return {
                str(k): {str(o): str(v) for o, v in s.items()}
                for k, s in given.items()
                if isinstance(s, dict)
            }
        if not isinstance(given, str) or not given.strip():
            raise invalid_parameters(
                "'rclone_config' must be the text of an rclone config file (or its dump)."
            )
        if len(given) > 1024 * 1024:
            raise invalid_parameters("'rclone_config' is too long.")
        folder = os.path.join(session.daemon.state_dir, "import")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, suffix=".conf")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(given)
            with _no_config_pass():
                return read_config_file(session.daemon.binary, name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)

    def on_account_deleted(self, store: Any, account_id: int, data_dir: str) -> None:
        IdMap(store, account_id).delete_all()
        Snapshots(store, account_id).delete_all()


@contextlib.contextmanager
def _no_config_pass() -> Any:
    """Config text from the API is never decrypted with the server's environment password."""
    saved = os.environ.pop("RCLONE_CONFIG_PASS", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["RCLONE_CONFIG_PASS"] = saved


def _label(spec: RemoteSpec, remote: Any) -> str:
    main = spec.sections[spec.main]
    user = main.get("user") or main.get("username") or main.get("access_key_id", "")[:8]
    host = main.get("host") or main.get("endpoint") or main.get("url") or ""
    if user and host:
        from urllib.parse import urlsplit

        host = urlsplit(host).hostname or host if "://" in host else host
        return f"{user}@{host}"[:255]
    if isinstance(remote, str):
        return f"{remote} ({spec.type})"[:255]
    return f"{spec.type} remote"[:255]


def _check_host(policy: OutboundPolicy, host: str, port: int, url: str | None) -> None:
    """Apply the outbound policy to a host option. :raises ApiError: 400 when refused."""
    try:
        if url is not None:
            policy.check_url(url, schemes=("http", "https"))
        else:
            policy.resolve(host, port)
    except (OutboundError, ValueError) as exc:
        raise invalid_parameters(f"The remote's host is not allowed: {exc}") from None


#: The connectors of every service id served through rclone, and the ``rclone`` alias used to
#: create accounts of any type.
CONNECTORS: tuple[RcloneConnector, ...] = tuple(
    RcloneConnector(s) for s in ["rclone", *all_service_ids()]
)


def connector_for(service: str) -> RcloneConnector | None:
    """:returns: the connector of an ``rclone_<type>`` service id (made on demand), or None."""
    if service.startswith("rclone_") and service[len("rclone_") :].isalnum():
        return RcloneConnector(service)
    return None
