"""The consent page's forms for rclone services connected with credentials.

Each credential-based service (SFTP, FTP, SMB, S3, S3-compatible storage, Azure Blob Storage,
WebDAV through rclone) has a :class:`RcloneForm`: the fields a person fills in, each the rclone
option it sets (or ``rclone_path``, the folder the account sees). :func:`account_settings` turns a
submitted form into the settings ``POST /v1/accounts`` takes (``rclone_type``,
``rclone_options``, ``rclone_path``), checking only what the form itself can get wrong (a
missing field, a port that is not a number); the connector's ``validate_config`` then checks
them exactly as for the API: outbound policy, no local paths or programs, the remote tried
against its upstream before an account exists.

Secret fields (passwords, keys) are never written back into a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kloudless.server.errors import invalid_parameters

#: Longest value of a text field; a PEM private key may be longer.
MAX_FIELD = 1024
MAX_KEY = 16 * 1024


@dataclass(frozen=True)
class FormField:
    """One field of a form.

    :param option: the rclone option it sets, or ``rclone_path``.
    :param kind: ``text``, ``password``, ``url``, ``port``, ``key`` (a PEM private key,
        a secret text area) or ``checkbox``.
    :param required: the form is refused without it.
    :param hint: a short help text shown under the field.
    """

    option: str
    label: str
    kind: str = "text"
    required: bool = False
    hint: str = ""
    autocomplete: str = "off"

    @property
    def secret(self) -> bool:
        """:returns: whether the value must never be shown again."""
        return self.kind in ("password", "key")

    @property
    def max_length(self) -> int:
        return MAX_KEY if self.kind == "key" else MAX_FIELD


@dataclass(frozen=True)
class RcloneForm:
    """The form of one service.

    :param service: the Kloudless service id (a scope item names it).
    :param check: what to check when connecting failed (the page says only that it failed).
    :param fixed: options every account of the form gets (``provider`` of S3).
    :param one_of: option names of which at least one must be given (password or key).
    """

    service: str
    rclone_type: str
    title: str
    intro: str
    check: str
    fields: tuple[FormField, ...]
    fixed: Mapping[str, str] = field(default_factory=dict)
    one_of: tuple[str, ...] = ()


def _host(default_port: int) -> tuple[FormField, ...]:
    return (
        FormField("host", "Server name or address", required=True, autocomplete="url"),
        FormField("port", f"Port (default {default_port})", kind="port"),
    )


def _login(user_required: bool = True) -> tuple[FormField, ...]:
    return (
        FormField("user", "User name", required=user_required, autocomplete="username"),
        FormField("pass", "Password", kind="password", autocomplete="current-password"),
    )


def _s3_keys() -> tuple[FormField, ...]:
    return (
        FormField("access_key_id", "Access key ID", required=True),
        FormField("secret_access_key", "Secret access key", kind="password", required=True),
    )


def _folder(label: str = "Folder (optional)", hint: str = "") -> FormField:
    return FormField(
        "rclone_path", label, hint=hint or "Only this folder is connected; empty: everything."
    )


#: Every form, in the order the page shows them when a scope names several.
FORMS: dict[str, RcloneForm] = {
    form.service: form
    for form in (
        RcloneForm(
            "sftp",
            "sftp",
            "SFTP server",
            "Sign in with the server's address, your user name and your password or private key.",
            "the server name, the port, the user name and the password or key",
            (
                *_host(22),
                *_login(),
                FormField(
                    "key_pem",
                    "Private key (PEM, instead of a password)",
                    kind="key",
                    hint="Paste the whole key, from -----BEGIN to END-----.",
                ),
                FormField("key_file_pass", "Private key passphrase (if any)", kind="password"),
                _folder(),
            ),
            one_of=("pass", "key_pem"),
        ),
        RcloneForm(
            "ftp",
            "ftp",
            "FTP server",
            "Sign in with the server's address, your user name and your password.",
            "the server name, the port, the user name, the password and the TLS choice",
            (
                *_host(21),
                *_login(),
                FormField("explicit_tls", "Use TLS (explicit FTPS)", kind="checkbox"),
                _folder(),
            ),
        ),
        RcloneForm(
            "smb",
            "smb",
            "Windows share (SMB)",
            "Sign in with the server's address, your user name and your password.",
            "the server name, the port, the user name, the password, the domain and the share",
            (
                *_host(445),
                *_login(),
                FormField("domain", "Domain (optional)"),
                _folder("Share and folder (optional)", "For example: share/folder."),
            ),
        ),
        RcloneForm(
            "s3",
            "s3",
            "Amazon S3",
            "Sign in with an access key of your AWS account.",
            "the access key, the region and the bucket",
            (
                *_s3_keys(),
                FormField("region", "Region (optional)", hint="For example: eu-west-1."),
                _folder("Bucket and folder (optional)", "For example: my-bucket/photos."),
            ),
            fixed={"provider": "AWS"},
        ),
        RcloneForm(
            "s3_compatible",
            "s3",
            "S3-compatible storage",
            "Sign in to an S3-compatible store (MinIO, Ceph, Wasabi...) with an access key.",
            "the endpoint URL, the access key and the bucket",
            (
                FormField(
                    "endpoint",
                    "Endpoint URL",
                    kind="url",
                    required=True,
                    hint="For example: https://s3.example.com",
                    autocomplete="url",
                ),
                *_s3_keys(),
                FormField("region", "Region (optional)"),
                _folder("Bucket and folder (optional)", "For example: my-bucket/photos."),
            ),
            fixed={"provider": "Other"},
        ),
        RcloneForm(
            "azure",
            "azureblob",
            "Azure Blob Storage",
            "Sign in with your storage account's name and one of its access keys.",
            "the storage account name, the access key and the container",
            (
                FormField("account", "Storage account name", required=True),
                FormField("key", "Access key", kind="password", required=True),
                _folder("Container and folder (optional)"),
            ),
        ),
        RcloneForm(
            "rclone_webdav",
            "webdav",
            "WebDAV server (through rclone)",
            "Sign in with the server's address, your user name and your password.",
            "the server URL, the user name and the password",
            (
                FormField("url", "Server URL", kind="url", required=True, autocomplete="url"),
                *_login(),
                _folder(),
            ),
            fixed={"vendor": "other"},
        ),
    )
}


def form_for(service: str) -> RcloneForm | None:
    """:returns: the form of a service id, or None when it has none."""
    return FORMS.get(service)


def account_settings(form: RcloneForm, values: Mapping[str, str]) -> dict[str, Any]:
    """Turn a submitted form into ``POST /v1/accounts`` settings.

    :param values: option name -> submitted text (of this form only).
    :raises ApiError: 400 naming the field that is missing or malformed.
    """
    options: dict[str, str] = dict(form.fixed)
    path = ""
    for item in form.fields:
        raw = values.get(item.option, "")
        value = raw if item.kind == "key" else raw.strip()
        if len(value) > item.max_length:
            raise invalid_parameters(f"'{item.label}' is too long.")
        if item.kind == "checkbox":
            if value:
                options[item.option] = "true"
            continue
        if not value:
            if item.required:
                raise invalid_parameters(f"'{item.label}' is required.")
            continue
        if item.kind == "port" and not (
            value.isascii() and value.isdigit() and 0 < int(value) < 65536
        ):
            raise invalid_parameters(f"'{item.label}' must be a number from 1 to 65535.")
        if item.kind == "url" and not value.lower().startswith(("http://", "https://")):
            raise invalid_parameters(f"'{item.label}' must start with https:// (or http://).")
        if item.option == "rclone_path":
            path = value.strip("/")
        else:
            options[item.option] = value
    if form.one_of and not any(options.get(o) for o in form.one_of):
        labels = " or ".join(f"'{f.label}'" for f in form.fields if f.option in form.one_of)
        raise invalid_parameters(f"Give {labels}.")
    settings: dict[str, Any] = {"rclone_type": form.rclone_type, "rclone_options": options}
    if path:
        settings["rclone_path"] = path
    return settings


__all__ = ["FORMS", "FormField", "RcloneForm", "account_settings", "form_for"]
