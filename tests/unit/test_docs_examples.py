"""The 2.x documentation examples (spec section 2.15, original README and core concepts) run
unchanged against ``responses`` mocks. Each example's code is kept verbatim in a string and run
with ``exec``; the mocks stand in for the hosted API."""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any

import pytest
import responses

import kloudless

BASE = "http://localhost:8002"
API = BASE + "/v1"
ACC = API + "/accounts/me"


def run(code: str, **namespace: Any) -> tuple[dict[str, Any], str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<example>", "exec"), namespace)  # noqa: S102
    account = namespace.get("account")
    if isinstance(account, kloudless.Client):
        account.close()
    return namespace, out.getvalue()


CONFIG_EXAMPLE = """
from kloudless import configuration
from kloudless import Account

account = Account(token="YOUR_BEARER_TOKEN")
print(account.url) # 'https://api.kloudless.com/v1/accounts/me'

# Configuration changes would affect the Account and Client create afterward
configuration['base_url'] = 'http://localhost:8002'
configuration['api_version'] = '2'

account = Account(token="YOUR_BEARER_TOKEN")
print(account.url) # 'http://localhost:8002/v2/accounts/me'
"""


def test_modifying_global_config() -> None:
    kloudless.configuration["base_url"] = "https://api.kloudless.com"
    _, out = run(CONFIG_EXAMPLE)
    assert out.split() == [
        "https://api.kloudless.com/v1/accounts/me",
        "http://localhost:8002/v2/accounts/me",
    ]


API_VERSION_EXAMPLE = """
from kloudless import Account

account = Account(token="YOUR_BEARER_TOKEN")

# Request to 'https://api.kloudless.com/v1/accounts/me'
response = account.get()

# Request to 'https://api.kloudless.com/v2/accounts/me'
response = account.get(api_version=2)
"""


def test_api_version_for_one_request(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC, json={"id": 1})
    mocked.add("GET", BASE + "/v2/accounts/me", json={"id": 1})
    run(API_VERSION_EXAMPLE)
    assert [c.request.url for c in mocked.calls] == [ACC, BASE + "/v2/accounts/me"]


RAW_DATA_EXAMPLE = """
from kloudless import Account

account = Account(token="BEARER_TOKEN_FOR_CALENDAR_SERVICE")

calendar = account.get('cal/calendars/primary', get_raw_data=True)
print(calendar.data['raw'])
"""


def test_raw_object(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/cal/calendars/primary", json={"id": "c", "raw": {"kind": "up"}})
    _, out = run(RAW_DATA_EXAMPLE)
    assert out.strip() == "{'kind': 'up'}"
    assert mocked.calls[0].request.headers["X-Kloudless-Raw-Data"] == "true"


DEFAULT_HEADERS_EXAMPLE = """
from kloudless import Account

account = Account(token='BEARER_TOKEN_FOR_CALENDAR_SERVICE')
account.headers['X-Kloudless-Raw-Data'] = 'true'

# the request afterward would include raw data by default
calendars = account.get('cal/calendars')
"""


def test_default_headers(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/cal/calendars", json={"type": "object_list", "objects": []})
    run(DEFAULT_HEADERS_EXAMPLE)
    assert mocked.calls[0].request.headers["X-Kloudless-Raw-Data"] == "true"


EVENTS_EXAMPLE = """
from kloudless import Account

account = Account(token="YOUR_BEARER_TOKEN")

# You can skip this step by using the cursor you stored.
cursor = account.get('events/latest').data['cursor']

# Iterating all events through pages with page_size equals 50
events = account.get('events', params={'cursor': cursor, 'page_size': 50})
for event in events.get_paging_iterator():
    print(event.data)

# You can store the latest cursor for next time usage
latest_cursor = events.latest_cursor
"""


def test_retrieving_events(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/events/latest", json={"cursor": "C0"})
    mocked.add(
        "GET",
        ACC + "/events?cursor=C0&page_size=50",
        json={"type": "object_list", "objects": [{"id": "e1"}], "cursor": "C1"},
    )
    mocked.add(
        "GET",
        ACC + "/events?page_size=50&cursor=C1",
        json={"type": "object_list", "objects": [], "cursor": "C1"},
    )
    namespace, out = run(EVENTS_EXAMPLE)
    assert out.strip() == "{'id': 'e1'}"
    assert namespace["latest_cursor"] == "C1"


PASS_THROUGH_EXAMPLE = """
from kloudless import Account

account = Account(token="'BEARER_TOKEN_FOR_GDRIVE_SERVICE'")

# Using raw method to forward request to Google Drive API
response = account.raw('GET', '/drive/v2/about')
"""


def test_pass_through(mocked: responses.RequestsMock) -> None:
    mocked.add("POST", ACC + "/raw", json={"kind": "drive#about"})
    namespace, _ = run(PASS_THROUGH_EXAMPLE)
    assert namespace["response"].json() == {"kind": "drive#about"}
    assert mocked.calls[0].request.headers["X-Kloudless-Raw-URI"] == "/drive/v2/about"


APP_LEVEL_EXAMPLE = """
from kloudless import Client

# See https://developers.kloudless.com/docs/latest/meta#introduction-to-the-meta-api
# Use meta bearer token to initialize Client
meta_client = Client(token='YOUR_META_BEARER_TOKEN')

# Get info of your applications
applications = meta_client.get('meta/applications')
print(applications.data)

# Use API key to initialize Client
client = Client(api_key='YOUR_API_KEY')

# Get all accounts connect to your application
accounts = client.get('accounts')
print(accounts.data)
"""


def test_application_level(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/meta/applications", json={"type": "object_list", "objects": []})
    mocked.add("GET", API + "/accounts", json={"type": "object_list", "objects": [{"id": 1}]})
    namespace, out = run(APP_LEVEL_EXAMPLE)
    namespace["meta_client"].close()
    namespace["client"].close()
    assert "'objects': [{'id': 1}]" in out
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer YOUR_META_BEARER_TOKEN"
    assert mocked.calls[1].request.headers["Authorization"] == "APIKey YOUR_API_KEY"


VERIFY_EXAMPLE = """
from kloudless import verify_token
from kloudless import exceptions

app_id = "YOUR_APP_ID"
token = "BEARER_TOKEN_TO_VERIFY"
try:
    token_info = verify_token(app_id, token)
except exceptions.TokenVerificationFailed:
    print("Token:{} does not belong to App:{}".format(token, app_id))
except exceptions.APIException as e:
    # if other API request errors happened
    print(e.message)
else:
    print(token_info)
"""


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"client_id": "YOUR_APP_ID"}, "{'client_id': 'YOUR_APP_ID'}"),
        (200, {"client_id": "OTHER"}, "does not belong to App:YOUR_APP_ID"),
        (400, {"message": "Invalid token"}, "Request failed. Error data:"),
    ],
)
def test_verify_token_example(
    mocked: responses.RequestsMock, status: int, body: dict, expected: str
) -> None:
    mocked.add("GET", API + "/oauth/token", status=status, json=body)
    _, out = run(VERIFY_EXAMPLE)
    assert expected in out


LOGGING_EXAMPLE = """
from kloudless.util import logger

logger.setLevel('DEBUG')
"""


def test_logging_example() -> None:
    try:
        run(LOGGING_EXAMPLE)
        assert kloudless.util.logger.level == 10
    finally:
        kloudless.util.logger.setLevel("NOTSET")


STORAGE_EXAMPLE = """
# retrieve folder contents
root_folder_contents = account.get('storage/folders/root/contents')
for resource in root_folder_contents.get_paging_iterator():
    print(resource.data)

# download the first file in root_folder
for resource in root_folder_contents:
    if resource.data['type'] == 'file':
        filename = resource.data['name']
        response = resource.get('contents')
        with open(filename, 'wb') as f:
            f.write(response.content)
        break

# upload a file to root_folder
file_name = 'FILE_NAME_TO_UPLOAD'
headers = {
    'X-Kloudless-Metadata': json.dumps(
        {'parent_id': 'root', 'name': file_name}
    )
}
with open(file_name, 'rb') as f:
    file_resource = account.post('storage/files', data=f, headers=headers)
"""


def test_readme_storage(mocked: responses.RequestsMock, tmp_path: Any) -> None:
    mocked.add(
        "GET",
        ACC + "/storage/folders/root/contents",
        json={
            "type": "object_list",
            "page": 1,
            "next_page": None,
            "objects": [
                {"id": "D", "api": "storage", "type": "folder", "name": "dir"},
                {"id": "F", "api": "storage", "type": "file", "name": "a.txt"},
            ],
        },
    )
    mocked.add("GET", ACC + "/storage/files/F/contents", body=b"hello", content_type="text/plain")
    mocked.add("POST", ACC + "/storage/files", json={"id": "N", "api": "storage", "type": "file"})
    (tmp_path / "FILE_NAME_TO_UPLOAD").write_bytes(b"upload me")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        account = kloudless.Account(token="YOUR_BEARER_TOKEN")
        namespace, _ = run(STORAGE_EXAMPLE, account=account, json=json)
    finally:
        os.chdir(cwd)
    assert (tmp_path / "a.txt").read_bytes() == b"hello"
    upload = mocked.calls[2].request
    assert upload.body == b"upload me"
    assert json.loads(upload.headers["X-Kloudless-Metadata"]) == {
        "parent_id": "root",
        "name": "FILE_NAME_TO_UPLOAD",
    }
    assert namespace["file_resource"].url == ACC + "/storage/files/N"


CALENDAR_EXAMPLE = """
# retrieve primary calendar
calendar = account.get('cal/calendars/primary')
print('Primary Calendar: {}'.format(calendar.data['name']))

# iterate through events in first page with page_size equals 5
events = calendar.get('events?page_size=5')
for e in events:
    data = e.data
    print('{}: {}~{}'.format(data['name'], data['start'], data['end']))

# iterate thorough events in second page
next_page_events = events.get_next_page()
for e in next_page_events:
    data = e.data
    print('{}: {}~{}'.format(data['name'], data['start'], data['end']))

# create a new event on primary calendar
event = events.post(json={
    'start': '2019-01-01T12:30:00Z',
    'end': '2019-01-01T13:30:00Z',
    'name': 'Event test'}
)
"""


def test_readme_calendar(mocked: responses.RequestsMock) -> None:
    events = ACC + "/cal/calendars/primary/events"

    def event(n: int) -> dict:
        return {"id": f"e{n}", "name": f"n{n}", "start": "s", "end": "e", "api": "calendar"}

    mocked.add("GET", ACC + "/cal/calendars/primary", json={"id": "real", "name": "Main"})
    mocked.add(
        "GET",
        events + "?page_size=5",
        json={"type": "object_list", "objects": [event(1)], "next_page": "P2"},
    )
    mocked.add(
        "GET",
        events + "?page_size=5&page=P2",
        json={"type": "object_list", "objects": [event(2)], "next_page": None},
    )
    mocked.add("POST", events, json=event(3))
    account = kloudless.Account(token="YOUR_BEARER_TOKEN")
    namespace, out = run(CALENDAR_EXAMPLE, account=account)
    assert out.splitlines() == ["Primary Calendar: Main", "n1: s~e", "n2: s~e"]
    assert namespace["event"].url == events + "/e3"
    assert json.loads(mocked.calls[3].request.body)["name"] == "Event test"


DJANGO_EXAMPLE = """
from kloudless import get_authorization_url, get_token_from_code

def start_authorization_flow(request):
    url, state = get_authorization_url(app_id=settings.KLOUDLESS_APP_ID,
                                       redirect_uri=settings.KLOUDLESS_REDIRECT_URL,
                                       scope='storage')
    request.session['authorization_state'] = state
    return HttpResponseRedirect(url)

def callback(request):
    params = request.GET.dict()
    token = get_token_from_code(app_id=settings.KLOUDLESS_APP_ID,
                                api_key=settings.KLOUDLESS_API_KEY,
                                orig_state=request.session['authorization_state'],
                                orig_redirect_uri=settings.KLOUDLESS_REDIRECT_URL,
                                **params)
    request.user.kloudless_token = token
    request.user.save()
    return HttpResponse('Account connects successfully.')
"""


class _Obj:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def test_django_sample(mocked: responses.RequestsMock) -> None:
    mocked.add("POST", API + "/oauth/token", json={"access_token": "NEW"})
    settings = _Obj(
        KLOUDLESS_APP_ID="APP", KLOUDLESS_API_KEY="KEY", KLOUDLESS_REDIRECT_URL="http://cb"
    )
    saved: list[str] = []
    user = _Obj(save=lambda: saved.append(user.kloudless_token))
    namespace, _ = run(
        DJANGO_EXAMPLE,
        settings=settings,
        HttpResponseRedirect=lambda url: ("redirect", url),
        HttpResponse=lambda text: ("ok", text),
    )
    request = _Obj(session={}, user=user)
    kind, url = namespace["start_authorization_flow"](request)
    assert kind == "redirect" and "scope=storage" in url
    state = request.session["authorization_state"]
    request.GET = _Obj(dict=lambda: {"code": "C", "state": state})
    assert namespace["callback"](request) == ("ok", "Account connects successfully.")
    assert saved == ["NEW"]
