"""The storage end-to-end tests and the storage SDK examples, unchanged, against an rclone account
of each upstream kind on a real server (waitress on 127.0.0.1).

The tests are the functions of ``tests/e2e/test_docs_examples.py`` and
``tests/examples/test_example_scripts.py``, collected here again with this module's fixtures:
``account``, ``token``, ``live_server`` and ``creds`` are those of an rclone account.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "examples"))
sys.path.insert(0, str(ROOT / "tests" / "cli"))

from example_helpers import live_server_module  # noqa: E402

from tests.e2e.test_docs_examples import (  # noqa: E402, F401 - collected with these fixtures
    test_async_copy_task,
    test_chunked_upload_and_ranged_download,
    test_paging_iterator_over_many_pages,
    test_storage_readme_example,
)
from tests.examples.test_example_scripts import (  # noqa: E402, F401
    test_large_upload_generated_file_multipart_verified,
    test_large_upload_given_file,
)

from .servers import KINDS, Upstreams  # noqa: E402


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import kloudless

    base = tmp_path_factory.getbasetemp()
    server = live_server_module.LiveServer(
        str(tmp_path_factory.mktemp("rclone-e2e-data")),
        multipart_part_size=1024 * 1024,
        rclone_local_roots=[str(base)],
        allow_upstream=["127.0.0.1"],
    ).start()
    previous = kloudless.configuration["base_url"]
    kloudless.configuration["base_url"] = server.base_url
    yield server
    kloudless.configuration["base_url"] = previous
    server.stop()


@pytest.fixture(params=KINDS)
def creds(request: pytest.FixtureRequest, live_server: Any, upstreams: Upstreams) -> Any:
    """A fresh rclone account (through ``POST /v1/accounts``) of each upstream kind."""
    from kloudless import Client

    upstream = upstreams.make(str(request.param))
    with Client(api_key=live_server.api_key, base_url=live_server.base_url) as client:
        created = client.post("accounts", json={"service": "rclone", **upstream.account_settings()})
    account_id = int(created.data["id"])
    store = live_server.thread.app.store
    token = store.create_token(live_server.app_id, account_id)
    return live_server_module.Credentials(
        live_server.base_url, live_server.app_id, live_server.api_key, account_id, token
    )


@pytest.fixture
def token(creds: Any) -> str:
    return str(creds.token)


@pytest.fixture
def account(creds: Any) -> Iterator[Any]:
    from kloudless import Account

    with Account(token=creds.token, base_url=creds.base_url) as acc:
        yield acc
