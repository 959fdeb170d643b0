"""A round-robin TCP proxy on 127.0.0.1 for the cluster test: each new connection goes to the
next backend that accepts it (a dead one is skipped), as a load balancer in front of several
API processes does."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading


class RoundRobinProxy:
    """Forward connections to ``backends`` (``(host, port)``) in turn.

    :param backends: where to connect.
    """

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.5)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._sockets: set[socket.socket] = set()
        #: Connections forwarded per backend index.
        self.counts = [0] * len(backends)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> RoundRobinProxy:
        self._thread.start()
        return self

    def _connect(self) -> socket.socket | None:
        for _ in range(len(self.backends)):
            with self._lock:
                index = next(self._next)
            try:
                upstream = socket.create_connection(self.backends[index], timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            with self._lock:
                self.counts[index] += 1
            return upstream
        return None

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        with self._lock:
            self._sockets.update((client, upstream))
        pumps = [
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True),
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        for sock in (client, upstream):
            with self._lock:
                self._sockets.discard(sock)
            sock.close()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        # Either side ending ends the pair (a killed backend resets the client's connection).
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(10)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
