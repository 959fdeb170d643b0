"""One Kloudless account: :class:`Account` and :func:`get_verified_account`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from .client import Client
from .exceptions import InvalidParameter
from .util import url_join

__all__ = ["SAFE_RAW_METHODS", "Account", "get_verified_account"]

#: Upstream methods of pass-through calls that are retried by default.
SAFE_RAW_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Account(Client):
    """A client whose URL is one account's: ``{base_url}/v{n}/accounts/{account_id|me}``.

    Either ``token`` or ``api_key`` is needed; ``account_id`` is needed with ``api_key``. When both
    credentials are given the Bearer token is used. Keyword settings are those of
    :class:`~kloudless.client.Client` (``base_url``, ``timeout``, ``max_retries``...).

    :param token: Bearer token.
    :param api_key: API key.
    :param account_id: account id (``'me'`` when omitted).

    :ivar str url: the account URL, prefix of every call.
    :ivar account_id: the id as given, or ``'me'``.
    """

    def __init__(
        self,
        token: str | None = None,
        api_key: str | None = None,
        account_id: Any = None,
        **settings: Any,
    ) -> None:
        if api_key and not account_id:
            raise InvalidParameter(
                "An account_id must be provided if you want to use api_key to create an account "
                "instance"
            )
        super().__init__(api_key=api_key, token=token, **settings)
        self.account_id = account_id or "me"
        self.url = url_join(self.url, "accounts/" + quote(str(self.account_id), safe=""))

    def raw(
        self,
        raw_method: str,
        raw_uri: str,
        retry: bool | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Pass-through API: POST ``{account URL}/raw`` with ``X-Kloudless-Raw-Method``/``-URI``.

        Retries: by default only when ``raw_method`` is safe to repeat upstream (GET, HEAD,
        OPTIONS, PUT, DELETE); other methods are retried only on a 429 or a connection that failed
        before sending, unless the caller passes ``retry=True`` (or ``max_retries=``).

        :param raw_method: upstream HTTP method (``X-Kloudless-Raw-Method``).
        :param raw_uri: upstream URI (``X-Kloudless-Raw-URI``).
        :param retry: ``True`` retries like a safe call, ``False`` never retries.
        :param kwargs: passed to :meth:`~kloudless.client.Client.post` (``headers`` is copied).
        :returns: the raw ``requests.Response``.
        """
        headers = dict(kwargs.pop("headers", None) or {})
        headers["X-Kloudless-Raw-Method"] = raw_method
        headers["X-Kloudless-Raw-URI"] = raw_uri
        if retry is None and (
            str(raw_method).upper() in SAFE_RAW_METHODS or kwargs.get("max_retries")
        ):
            retry = True
        if retry is None:
            # The POST carries an Idempotency-Key, but the upstream call it triggers may not be
            # idempotent: retry only requests that cannot have been processed (429, not sent).
            kwargs["_key_allows_retry"] = False
        return self.post("raw", get_raw_response=True, headers=headers, retry=retry, **kwargs)

    def upload(
        self,
        source: Any,
        parent_id: str = "root",
        name: str | None = None,
        overwrite: bool = False,
        progress: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Upload a file (see :func:`kloudless.transfer.upload_file`): one streamed POST for small
        files, a resumable multipart upload above a threshold.

        :param source: a path or a binary file object.
        :param parent_id: id of the destination folder.
        :param name: file name (the source's name when omitted).
        :param overwrite: replace a file of the same name.
        :param progress: ``callback(bytes_done, total)``.
        :param kwargs: passed to :func:`~kloudless.transfer.upload_file`.
        :returns: what :func:`~kloudless.transfer.upload_file` returns (the file resource).
        """
        from .transfer import upload_file

        return upload_file(
            self,
            source,
            parent_id=parent_id,
            name=name,
            overwrite=overwrite,
            progress=progress,
            **kwargs,
        )


def get_verified_account(app_id: str, token: str) -> Account:
    """Verify that ``token`` belongs to application ``app_id`` and return its :class:`Account`.

    :param app_id: application id.
    :param token: the account's Bearer token.
    :returns: ``Account(token=token)``.
    :raises kloudless.exceptions.TokenVerificationFailed: when the token is another app's.
    :raises kloudless.exceptions.APIException: for API errors.
    """
    from .application import verify_token

    verify_token(app_id, token)
    return Account(token=token)
