"""A bounded, thread-safe pool of upstream clients, one per set of credentials, so their
connections (and discovery) are reused across requests. The least recently used client is closed
when the pool is full."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Callable, Generic, Protocol, TypeVar


class _Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar("T", bound=_Closable)


class ClientPool(Generic[T]):
    """Clients keyed by their settings (hash secrets before putting them in a key).

    :param limit: most clients kept open.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._clients: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, create: Callable[[], T]) -> T:
        """:returns: the pooled client for ``key``, made with ``create()`` if there is none."""
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = create()
                while len(self._clients) > self.limit:
                    _, old = self._clients.popitem(last=False)
                    old.close()
            else:
                self._clients.move_to_end(key)
            return client

    def close_all(self) -> None:
        """Close and forget every client (tests and server shutdown)."""
        with self._lock:
            while self._clients:
                _, client = self._clients.popitem()
                client.close()

    def values(self) -> list[T]:
        """:returns: the pooled clients, least recently used first."""
        with self._lock:
            return list(self._clients.values())

    def __len__(self) -> int:
        return len(self._clients)
