"""Helpers of the example tests: the live server, running examples, the consent page.

A uniquely named module (not ``conftest``) so that test modules can import it unambiguously.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: Seconds any example process may take before the test gives up on it.
TIMEOUT = 60


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The live server helper is shared with the command-line tests.
sys.path.insert(0, str(ROOT / "tests" / "cli"))
import live_server as live_server_module  # noqa: E402, F401 - re-exported for conftest


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (examples are scripts, not a package)."""
    return _load(f"example_{name}", EXAMPLES / f"{name}.py")


def example_env(creds: Any) -> dict[str, str]:
    """The environment an example runs with: this process's, with only ``creds``' KLOUDLESS_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLOUDLESS_")}
    env.update(creds.env())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_example(
    name: str, args: list[str], creds: Any, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/<name>.py ARGS`` to completion (bounded by :data:`TIMEOUT`)."""
    env = example_env(creds)
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
        cwd=str(ROOT),
    )


class ExampleServer:
    """An example HTTP server running as a child process; its URL is read from its first line."""

    def __init__(
        self, name: str, args: list[str], creds: Any, extra_env: dict[str, str] | None = None
    ) -> None:
        env = example_env(creds)
        env.update(extra_env or {})
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.next_line()
        assert first.startswith("Listening on http://"), first
        self.url = first.split("Listening on ", 1)[1].strip().rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.stderr = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def next_line(self, timeout: float = 20) -> str:
        """The next stdout line (fails after ``timeout`` seconds)."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.process.kill()
            _, err = self.process.communicate(timeout=TIMEOUT)
            raise AssertionError(f"no output from the example; stderr: {err}") from None

    def stop(self) -> None:
        """Terminate the process and keep its stderr."""
        self.process.terminate()
        try:
            _, self.stderr = self.process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate(timeout=TIMEOUT)
        self._reader.join(timeout=5)


# -- the local server's consent page ---------------------------------------------------------


class _FormParser(HTMLParser):
    """Collect the consent form's fields: hidden inputs and the checked account radio."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "input":
            return
        attributes = {k: v or "" for k, v in attrs}
        kind, name = attributes.get("type"), attributes.get("name")
        if not name:
            return
        if kind == "hidden" or (kind == "radio" and "checked" in attributes):
            self.fields[name] = attributes.get("value", "")


def consent(
    browser: requests.Session, consent_url: str, decision: str = "allow", timeout: float = 10
) -> str:
    """Act as the user on the consent page: load it, submit the form, return the redirect target.

    :param browser: the user's session (keeps the page's CSRF cookie).
    :param consent_url: the authorization URL the app redirected to.
    :param decision: ``allow`` or ``deny``.
    :returns: the ``Location`` the API redirects the browser to (the app's callback).
    """
    page = browser.get(consent_url, timeout=timeout)
    assert page.status_code == 200, page.text
    parser = _FormParser()
    parser.feed(page.text)
    form = dict(parser.fields)
    form.setdefault("account_id", "new")
    form["decision"] = decision
    answer = browser.post(page.url, data=form, allow_redirects=False, timeout=timeout)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def wait_for(predicate: Any, timeout: float = 10) -> bool:
    """Poll ``predicate`` every 50 ms until it is true or ``timeout`` passes (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())
