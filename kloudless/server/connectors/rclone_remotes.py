"""rclone remotes of accounts: building them (from options or an rclone config file), checking
them against the upstream, sealing them at rest and defining them in the rcd.

An account's ``config`` holds::

    {"rclone_type": "sftp", "rclone_main": "main", "rclone_path": "sub/dir",
     "rclone_sealed": "<sealed JSON: {section name: {option: value}}>"}

The sealed sections are in rclone's config-file form (passwords *obscured* the way rclone
stores them) and sealed with the server secret like WebDAV passwords
(:func:`~kloudless.server.connectors.webdav_auth.seal`). ``rclone_main`` names the account's
remote; the other sections are the remotes it wraps (a ``crypt`` remote over a Google Drive
remote imported from a config file brings that remote along). In the rcd the sections are
defined under per-account names, ``k<account id>_<digest>_<name>``, with references between them
(``remote = gdrive:secret``) renamed the same way; with ``rclone_path`` an ``alias`` remote
points at that folder, so every call uses one remote name, with no path in it.

Remotes created from options through the API or the consent page may not reach the server's
own files or programs: no ``local`` backend, no local path as a wrapped remote, no on-the-fly
``:backend:`` remote, no option naming a local file or a command (``key_file``, ``ssh``,
``env_auth``...) unless the operator allowed local folders (``--rclone-allow-local DIR``), no
SFTP remote without a password or key (rclone would use the server's ssh-agent); and their
hosts must pass the server's outbound policy. ``kloudless accounts create`` run by the
operator is trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kloudless.server.connectors.rclone_errors import upstream_error
from kloudless.server.connectors.rclone_rc import RcClient, RcError
from kloudless.server.connectors.webdav_auth import seal, unseal
from kloudless.server.errors import ApiError, forbidden, invalid_parameters

#: rclone type -> (Kloudless service id, service name). Types without one are
#: ``rclone_<type>``. rclone's ``webdav`` and ``local`` keep ``rclone_`` ids because ``webdav``
#: and ``local`` are this server's own connectors.
SERVICES: dict[str, tuple[str, str]] = {
    "drive": ("gdrive", "Google Drive"),
    "dropbox": ("dropbox", "Dropbox"),
    "onedrive": ("skydrive", "OneDrive"),
    "box": ("box", "Box"),
    "s3": ("s3", "Amazon S3"),
    "azureblob": ("azure", "Azure Blob Storage"),
    "sftp": ("sftp", "SFTP"),
    "ftp": ("ftp", "FTP"),
    "smb": ("smb", "SMB"),
    "sharefile": ("sharefile", "Citrix ShareFile"),
    "sugarsync": ("sugarsync", "SugarSync"),
}
#: Extra service ids a type takes depending on its options (OneDrive kinds, S3 providers).
EXTRA_SERVICES: dict[str, str] = {
    "onedrivebiz": "OneDrive for Business",
    "sharepoint": "SharePoint Online",
    "s3_compatible": "S3-compatible storage",
    "aliyun_oss": "Alibaba Cloud OSS",
}
#: Option names that, from the API, could make rclone read server files or run programs.
_LOCAL_OPTIONS = re.compile(
    r"(^|_)(file|files|cert|key_pem_file|command|cmd)$|^(ssh|env_auth|client_key|socket|"
    r"pubkey|known_hosts|config_file|password_command|use_agent|local_.*)$"
)
#: Options whose value names another remote (``name:path``), or several (space-separated).
_REFERENCES = ("remote", "upstreams")
#: Options whose value is a host name or URL the backend connects to.
_HOST_OPTIONS = ("host", "url", "endpoint", "auth_url", "api_url", "server", "hostname")
#: Default ports of the backends whose ``host`` option has no scheme.
_PORTS = {"sftp": 22, "ftp": 21, "smb": 445}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+@ -]{0,99}$")
MAX_OPTIONS = 100
MAX_VALUE = 64 * 1024


@dataclass
class RemoteSpec:
    """A remote to check and store: its sections, the main one and a sub-folder."""

    sections: dict[str, dict[str, str]]
    main: str
    path: str = ""

    @property
    def type(self) -> str:
        """:returns: the rclone type of the main section."""
        return self.sections[self.main]["type"]


def service_for(rtype: str, options: Mapping[str, str]) -> tuple[str, str]:
    """:returns: ``(service id, service name)`` of a remote (see :data:`SERVICES`)."""
    if rtype == "onedrive":
        kind = options.get("drive_type", "personal")
        if kind == "business":
            return "onedrivebiz", EXTRA_SERVICES["onedrivebiz"]
        if kind == "documentLibrary":
            return "sharepoint", EXTRA_SERVICES["sharepoint"]
    if rtype == "s3":
        provider = options.get("provider", "AWS") or "AWS"
        if provider == "Alibaba":
            return "aliyun_oss", EXTRA_SERVICES["aliyun_oss"]
        if provider != "AWS":
            return "s3_compatible", EXTRA_SERVICES["s3_compatible"]
    if rtype in SERVICES:
        return SERVICES[rtype]
    return f"rclone_{rtype}", f"{rtype} (rclone)"


def all_service_ids() -> list[str]:
    """:returns: every Kloudless service id the rclone connector serves (not ``rclone_*``)."""
    return sorted({s for s, _ in SERVICES.values()} | set(EXTRA_SERVICES))


def service_name(service: str) -> str:
    """:returns: the display name of a service id served through rclone."""
    for sid, name in SERVICES.values():
        if sid == service:
            return name
    if service in EXTRA_SERVICES:
        return EXTRA_SERVICES[service]
    return f"{service[len('rclone_') :]} (rclone)" if service.startswith("rclone_") else service


# -- building specs ------------------------------------------------------------------------------


def _clean_path(path: Any) -> str:
    if path is None:
        return ""
    if not isinstance(path, str) or len(path) > 1024 or "\0" in path:
        raise invalid_parameters("'rclone_path' must be a folder path (a string).")
    return path.strip()


def spec_from_options(rtype: Any, options: Any, path: Any = None) -> RemoteSpec:
    """Build a remote from ``--rclone-type`` and ``--rclone-option KEY=VALUE`` values.

    :param options: a mapping of option names to values (plain, not obscured).
    :raises ApiError: 400 for a malformed type or option.
    """
    if not isinstance(rtype, str) or not re.fullmatch(r"[a-z0-9]{1,40}", rtype):
        raise invalid_parameters("'rclone_type' must be an rclone backend name, e.g. 'sftp'.")
    if options is None:
        options = {}
    if not isinstance(options, Mapping) or len(options) > MAX_OPTIONS:
        raise invalid_parameters("'rclone_options' must be an object of option names to values.")
    section: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", key):
            raise invalid_parameters(f"Invalid rclone option name: {str(key)[:64]!r}.")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise invalid_parameters(f"rclone option {key!r} must be a string.")
        if key == "type":
            raise invalid_parameters("Give the backend as 'rclone_type', not as an option.")
        section[key] = value
    section["type"] = rtype
    return RemoteSpec({"main": section}, "main", _clean_path(path))


def read_config_file(binary: str, path: str | None) -> dict[str, dict[str, str]]:
    """Read every remote of an rclone config file (``rclone config dump``).

    An encrypted file is read with the password in ``RCLONE_CONFIG_PASS`` (of the calling
    environment).

    :param path: the file, or None for rclone's default config file.
    :raises ApiError: 400 when the file cannot be read.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env["RCLONE_ASK_PASSWORD"] = "false"
    if "RCLONE_CONFIG_PASS" in os.environ:
        env["RCLONE_CONFIG_PASS"] = os.environ["RCLONE_CONFIG_PASS"]
    if path is not None:
        if not os.path.isfile(path):
            raise invalid_parameters(f"No rclone config file at {path}.")
        env["RCLONE_CONFIG"] = os.path.abspath(path)
    try:
        done = subprocess.run(
            [binary, "config", "dump"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise invalid_parameters(f"rclone could not read the config file: {exc}") from None
    if done.returncode != 0:
        hint = ""
        if b"password" in done.stderr.lower():
            hint = " (it is encrypted: set RCLONE_CONFIG_PASS)"
        raise invalid_parameters(f"rclone could not read the config file{hint}.")
    try:
        dump = json.loads(done.stdout.decode("utf-8") or "{}")
    except ValueError:
        raise invalid_parameters("rclone printed an unreadable config dump.") from None
    return {
        str(name): {str(k): str(v) for k, v in section.items()}
        for name, section in dump.items()
        if isinstance(section, dict)
    }


def _references(value: str, names: Iterable[str]) -> list[str]:
    """:returns: the section names ``value`` (``name:path`` items) refers to."""
    found = []
    for item in value.split():
        name, sep, _ = item.partition(":")
        if sep and name in names:
            found.append(name)
    return found


def spec_from_config(
    sections: Mapping[str, Mapping[str, str]], name: str, path: Any = None
) -> RemoteSpec:
    """Pick the remote ``name`` from a config file's remotes, with the remotes it wraps.

    :raises ApiError: 400 when there is no such remote.
    """
    if name not in sections:
        known = ", ".join(sorted(sections)[:20]) or "none"
        raise invalid_parameters(f"No remote {name!r} in the rclone config (remotes: {known}).")
    picked: dict[str, dict[str, str]] = {}
    todo = [name]
    while todo and len(picked) < 20:
        current = todo.pop()
        if current in picked:
            continue
        section = dict(sections[current])
        if "type" not in section:
            raise invalid_parameters(f"The remote {current!r} has no type.")
        picked[current] = section
        for key in _REFERENCES:
            todo.extend(_references(section.get(key, ""), sections))
    return RemoteSpec(picked, name, _clean_path(path))


# -- policy --------------------------------------------------------------------------------------


def _within(path: str, roots: Iterable[str]) -> bool:
    real = os.path.realpath(path)
    return any(
        real == os.path.realpath(root) or real.startswith(os.path.realpath(root) + os.sep)
        for root in roots
    )


def check_policy(
    spec: RemoteSpec,
    local_roots: Iterable[str],
    trusted: bool = False,
    check_host: Callable[[str, int, str | None], None] | None = None,
) -> None:
    """Refuse remotes a caller may not create (see the module docstring).

    :param local_roots: folders under which local paths are allowed (``--rclone-allow-local``).
    :param trusted: the operator's command line: local paths, files and programs are allowed.
    :param check_host: ``callable(host, port, url or None)`` raising ApiError for a host the
        outbound policy refuses; None skips the host check.
    :raises ApiError: 403 ``forbidden`` naming the refused option.
    """
    roots = list(local_roots)
    for name, section in spec.sections.items():
        if not trusted:
            _check_local(spec, name, section, roots)
        if check_host is not None:
            for key in _HOST_OPTIONS:
                value = section.get(key, "")
                if "://" in value:
                    check_host(urlsplit(value).hostname or "", 0, value)
                elif value:
                    port = section.get("port", "")
                    default = _PORTS.get(section.get("type", ""), 443)
                    check_host(value, int(port) if port.isdigit() else default, None)


def _check_local(spec: RemoteSpec, name: str, section: Mapping[str, str], roots: list[str]) -> None:
    if section.get("type") == "sftp" and not (section.get("pass") or section.get("key_pem")):
        # Without a password or key rclone signs in with the server's own ssh-agent keys.
        raise forbidden(
            "An SFTP remote made through the API needs a password ('pass') or a private key"
            " ('key_pem'): the server's own SSH keys are not offered."
        )
    if section.get("type") == "local":
        target = spec.path if name == spec.main else ""
        if not roots or not os.path.isabs(target) or not _within(target, roots):
            raise forbidden(
                "The rclone 'local' backend reaches the server's own disk; it needs a path"
                " under a folder the server allows (kloudless serve --rclone-allow-local)."
            )
    for key, value in section.items():
        if key != "type" and _LOCAL_OPTIONS.search(key) and not roots:
            raise forbidden(f"The rclone option {key!r} is not allowed through the API.")
        if key not in _REFERENCES:
            continue
        for item in value.split():
            ref, sep, _ = item.partition(":")
            if sep and ref in spec.sections:
                continue
            if item.startswith(":") or (sep and ref):
                raise forbidden(f"The rclone option {key!r} names an unknown remote.")
            if not roots or not os.path.isabs(item) or not _within(item, roots):
                raise forbidden(
                    f"The rclone option {key!r} names a local path; the server allows local"
                    " paths only under --rclone-allow-local folders."
                )


# -- sealing -------------------------------------------------------------------------------------


def stored_config(spec: RemoteSpec, secret: bytes) -> dict[str, Any]:
    """:returns: the account ``config`` of a checked remote (sections sealed)."""
    return {
        "rclone_type": spec.type,
        "rclone_main": spec.main,
        "rclone_path": spec.path,
        "rclone_sealed": seal(secret, json.dumps(spec.sections, sort_keys=True)),
    }


def load_spec(config: Mapping[str, Any], secret: bytes) -> RemoteSpec:
    """:returns: the remote stored in an account ``config``.

    :raises ApiError: 500 when the stored remote cannot be unsealed (another server secret).
    """
    try:
        sections = json.loads(unseal(secret, str(config["rclone_sealed"])))
        main = str(config["rclone_main"])
        if main not in sections:
            raise ValueError("the main remote is missing")
    except (KeyError, ValueError) as exc:
        raise ApiError(
            500, "internal_error", f"The account's stored rclone remote is unusable: {exc}."
        ) from None
    return RemoteSpec(sections, main, str(config.get("rclone_path") or ""))


def secret_values(spec: RemoteSpec, sensitive: Mapping[str, set[str]]) -> list[str]:
    """:returns: the values of the spec's sensitive options (to redact from rclone's log),
    with the access and refresh tokens inside OAuth ``token`` JSON."""
    values: list[str] = []
    for section in spec.sections.values():
        names = sensitive.get(section.get("type", ""), set()) | {"token", "pass", "password"}
        for key, value in section.items():
            if key in names and value:
                values.append(value)
                if key == "token":
                    try:
                        token = json.loads(value)
                    except ValueError:
                        continue
                    if isinstance(token, dict):
                        values.extend(
                            str(token[k]) for k in ("access_token", "refresh_token") if token.get(k)
                        )
    return values


# -- the rcd side --------------------------------------------------------------------------------


def _rename(value: str, mapping: Mapping[str, str]) -> str:
    items = []
    for item in value.split(" "):
        ref, sep, rest = item.partition(":")
        items.append(f"{mapping[ref]}:{rest}" if sep and ref in mapping else item)
    return " ".join(items)


def remote_names(spec: RemoteSpec, prefix: str) -> dict[str, str]:
    """:returns: section name -> the name it gets in the rcd under ``prefix``."""
    return {
        name: f"{prefix}_{hashlib.sha256(name.encode()).hexdigest()[:6]}" for name in spec.sections
    }


def define(rc: RcClient, spec: RemoteSpec, prefix: str, obscure: bool) -> str:
    """Create the spec's remotes in the rcd under ``prefix``.

    :param obscure: the values are plain (from options): rclone obscures the passwords.
    :returns: the remote name the account's calls use.
    :raises RcError: when rclone refuses a section (unknown type or option).
    """
    names = remote_names(spec, prefix)
    for name, section in spec.sections.items():
        parameters = {
            k: (_rename(v, names) if k in _REFERENCES else v)
            for k, v in section.items()
            if k != "type"
        }
        rc.call(
            "config/create",
            {
                "name": names[name],
                "type": section["type"],
                "parameters": parameters,
                "opt": {"nonInteractive": True, "obscure": obscure, "noObscure": not obscure},
            },
        )
    main = names[spec.main]
    if spec.path:
        rc.call(
            "config/create",
            {
                "name": f"{prefix}_root",
                "type": "alias",
                "parameters": {"remote": f"{main}:{spec.path}"},
                "opt": {"nonInteractive": True, "noObscure": True},
            },
        )
        return f"{prefix}_root"
    return main


def undefine(rc: RcClient, spec: RemoteSpec, prefix: str) -> None:
    """Delete the spec's remotes from the rcd (quietly: they may not exist)."""
    for name in [*remote_names(spec, prefix).values(), f"{prefix}_root"]:
        try:
            rc.call("config/delete", {"name": name})
        except RcError:
            pass


def read_back(rc: RcClient, spec: RemoteSpec, prefix: str) -> RemoteSpec:
    """:returns: the spec as rclone stored it under ``prefix`` (passwords obscured, defaults
    filled in by the backend's own set-up), references renamed back."""
    names = remote_names(spec, prefix)
    back = {v: k for k, v in names.items()}
    sections: dict[str, dict[str, str]] = {}
    for name in spec.sections:
        stored = rc.call("config/get", {"name": names[name]})
        sections[name] = {
            str(k): (_rename(str(v), back) if k in _REFERENCES else str(v))
            for k, v in stored.items()
        }
        sections[name].setdefault("type", spec.sections[name]["type"])
    return RemoteSpec(sections, spec.main, spec.path)


def check(rc: RcClient, spec: RemoteSpec, obscure: bool) -> RemoteSpec:
    """Try a remote against its upstream before an account is created for it.

    Defines it in the rcd under a temporary name, lists the folder the account will see and
    reads back the config rclone made, then deletes the temporary remote.

    :returns: the spec in rclone's stored form (to seal).
    :raises ApiError: 400 for options rclone refuses, a missing folder or a file path; the
        mapped upstream error (401 for rejected credentials, 503 for an unreachable host...)
        with a message saying what failed.
    """
    prefix = f"chk{secrets.token_hex(6)}"
    try:
        try:
            fs_name = define(rc, spec, prefix, obscure)
        except RcError as exc:
            raise invalid_parameters(f"rclone refused the remote: {exc.message}") from None
        try:
            rc.call(
                "operations/list",
                {"fs": f"{fs_name}:", "remote": "", "opt": {"noModTime": True, "noMimeType": True}},
                timeout=120,
            )
        except RcError as exc:
            if exc.status == 404:
                raise invalid_parameters(
                    "The remote has no folder at "
                    f"{('rclone_path ' + repr(spec.path)) if spec.path else 'its root'}."
                ) from None
            raise upstream_error(exc, connecting=True) from None
        return read_back(rc, spec, prefix)
    finally:
        undefine(rc, spec, prefix)


def providers(rc: RcClient) -> dict[str, set[str]]:
    """:returns: rclone type -> names of its sensitive or password options."""
    answer = rc.call("config/providers")
    result: dict[str, set[str]] = {}
    for provider in answer.get("providers", []):
        names = {
            str(o.get("Name"))
            for o in provider.get("Options", [])
            if o.get("IsPassword") or o.get("Sensitive")
        }
        result[str(provider.get("Prefix") or provider.get("Name"))] = names
    return result


def valid_name(name: Any) -> str:
    """:returns: ``name`` when it is a plausible rclone remote name. :raises ApiError: 400."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise invalid_parameters("'rclone_remote' must be the name of a remote in the config.")
    return name
