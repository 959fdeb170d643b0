"""kloudless.resources: wrappers, resource URLs, paging, refresh, copies."""

from __future__ import annotations

import copy

import pytest
import requests
import responses

from kloudless import Account, Client, exceptions
from kloudless.resources import Resource, ResourceList, Response, ResponseJson
from kloudless.resources.base import empty, is_download_url

API = "http://localhost:8002/v1"
ACC = API + "/accounts/me"


def listing(objects: list, **extra: object) -> dict:
    return {"type": "object_list", "objects": objects, **extra}


def test_classification(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([]))
    mocked.add("GET", ACC + "/r", json={"id": "x"})
    mocked.add("GET", ACC + "/h", json={"href": ACC + "/h"})
    mocked.add("GET", ACC + "/j", json={"cursor": 5})
    mocked.add("GET", ACC + "/t", body="hello", content_type="text/plain")
    with Account(token="T") as account:
        assert type(account.get("l")) is ResourceList
        assert type(account.get("r")) is Resource
        assert type(account.get("h")) is Resource
        assert type(account.get("j")) is ResponseJson
        text = account.get("t")
    assert type(text) is Response
    assert text.text == "hello"
    assert text.status_code == 200


def test_response_query_params_keep_blank_values(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/x", json={"a": 1})
    with Account(token="T") as account:
        result = account.get("x?b=1&b=2&c=")
    assert result.url == ACC + "/x"
    assert result.query_params == {"b": ["1", "2"], "c": [""]}


def test_wrapper_delegates_to_raw_response(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/x", json={"a": 1}, headers={"X-Test": "v"})
    with Account(token="T") as account:
        result = account.get("x")
    assert result.headers["X-Test"] == "v"
    assert result.json() == {"a": 1}
    assert result.ok is True
    with pytest.raises(AttributeError):
        result.no_such_attribute  # noqa: B018


def test_wrapper_without_response_raises_attribute_error() -> None:
    with Client(token="T") as client:
        wrapper = Response(client, API + "/x")
    with pytest.raises(AttributeError):
        wrapper.status_code  # noqa: B018
    with pytest.raises(AttributeError):
        wrapper.__missing_dunder__  # noqa: B018


def test_copy_and_deepcopy(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": "a", "n": [1]}], page=1))
    with Account(token="T") as account:
        result = account.get("l")
        shallow = copy.copy(result)
        deep = copy.deepcopy(result)
        bare = copy.deepcopy(Response(account, ACC))
    assert shallow.data is result.data
    assert deep.data == result.data and deep.data is not result.data
    assert deep.objects[0].data["n"] is not result.objects[0].data["n"]
    assert deep.client is result.client
    assert deep.response is result.response
    assert type(deep) is ResourceList
    assert bare.url == ACC


def test_download_urls_stream_and_are_never_parsed(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/storage/files/F1/contents", json={"id": "inner"})
    mocked.add(
        "GET", ACC + "/storage/files/F1/thumbnail", body=b"\x89PNG", content_type="image/png"
    )
    mocked.add("GET", API + "/meta/licenses/L/contents", json=[1])
    with Account(token="T") as account:
        content = account.get("storage/files/F1/contents")
        thumb = account.get("storage/files/F1/thumbnail")
    assert type(content) is Response
    assert content.content == b'{"id": "inner"}'
    assert mocked.calls[0].request.req_kwargs["stream"] is True
    assert type(thumb) is Response
    with Client(token="T") as client:
        assert type(client.get("meta/licenses/L/contents")) is Response


def test_stream_false_can_be_forced(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/storage/files/F1/contents", body=b"abc")
    with Account(token="T") as account:
        account.get("storage/files/F1/contents", stream=False)
    assert mocked.calls[0].request.req_kwargs["stream"] is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (ACC + "/storage/files/a/contents", True),
        (ACC + "/storage/files/a/thumbnail?size=64", True),
        (API + "/meta/licenses/3/contents", True),
        (ACC + "/storage/files/a", False),
        (ACC + "/storage/folders/a/contents", False),
        (ACC + "/x?q=storage/files/a/contents", False),
    ],
)
def test_is_download_url(url: str, expected: bool) -> None:
    assert is_download_url(url) is expected


# --- resource URLs ---------------------------------------------------------------------------


def test_storage_urls_from_any_listing(mocked: responses.RequestsMock) -> None:
    mocked.add(
        "GET",
        ACC + "/storage/search",
        json=listing(
            [
                {"id": "F1", "api": "storage", "type": "file"},
                {"id": "D/1", "api": "storage", "type": "folder"},
            ]
        ),
    )
    with Account(token="T") as account:
        found = account.get("storage/search?q=x")
    assert [r.url for r in found] == [
        ACC + "/storage/files/F1",
        ACC + "/storage/folders/D%2F1",
    ]


@pytest.mark.parametrize(
    ("base", "account_id", "version"),
    [
        ("http://localhost:8002", "abc-def", "1"),
        ("http://localhost:8002/prefix/path", 12, "10"),
        ("https://api.example.com", "me", "2"),
    ],
)
def test_storage_urls_for_any_account_and_base(
    mocked: responses.RequestsMock, base: str, account_id: object, version: str
) -> None:
    prefix = f"{base}/v{version}/accounts/{account_id}"
    mocked.add(
        "POST", prefix + "/storage/files", json={"id": "N", "api": "storage", "type": "file"}
    )
    with Account(token="T", account_id=account_id, base_url=base, api_version=version) as account:
        created = account.post("storage/files", data=b"x")
    assert created.url == prefix + "/storage/files/N"


def test_account_get_keeps_account_url(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC, json={"id": 123, "type": "account", "service": "local"})
    mocked.add("GET", API + "/accounts/55", json={"id": 55, "service": "local"})
    with Account(token="T") as account:
        assert account.get().url == ACC
    with Account(api_key="K", account_id=55) as account:
        assert account.get().url == API + "/accounts/55"


def test_href_wins(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/x", json=listing([{"id": "a", "href": "/v1/accounts/me/things/a"}]))
    with Account(token="T") as account:
        item = account.get("x")[0]
    assert item.url == ACC + "/things/a"


def test_href_on_other_host_is_refused_when_used(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/x", json={"id": "a", "href": "https://evil.example/a"})
    with Account(token="SECRET") as account:
        item = account.get("x")
        assert item.url == "https://evil.example/a"
        with pytest.raises(exceptions.InvalidParameter):
            item.get()
    assert len(mocked.calls) == 1


def test_primary_calendar_alias_kept(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/cal/calendars/primary", json={"id": "real", "api": "calendar"})
    with Account(token="T") as account:
        calendar = account.get("cal/calendars/primary")
    assert calendar.url == ACC + "/cal/calendars/primary"


def test_generic_id_rules(mocked: responses.RequestsMock) -> None:
    mocked.add(
        "GET",
        ACC + "/events/12",
        json=listing([{"id": "2"}, {"id": None}, {"id": ""}, {"id": "a b"}, {"id": 12}]),
    )
    with Account(token="T") as account:
        items = account.get("events/12")
    assert items.url == ACC + "/events/12"
    assert [r.url for r in items] == [
        ACC + "/events/12/2",
        ACC + "/events/12",
        ACC + "/events/12",
        ACC + "/events/12/a%20b",
        ACC + "/events/12",
    ]


def test_id_already_last_segment_with_trailing_slash(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/cal/calendars/abc/", json={"id": "abc", "api": "calendar"})
    with Account(token="T") as account:
        assert account.get("cal/calendars/abc/").url == ACC + "/cal/calendars/abc/"


def test_accounts_listing_from_client(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/accounts", json=listing([{"id": 5}, {"id": 6}]))
    with Client(api_key="K") as client:
        accounts = client.get("accounts")
    assert [a.url for a in accounts] == [API + "/accounts/5", API + "/accounts/6"]


def test_non_dict_resource_data_keeps_url() -> None:
    with Client(token="T") as client:
        resource = Resource(data=["x"], url=API + "/x", client=client)
    assert resource.url == API + "/x"
    assert repr(resource) == "<Resource( ): {}>"


def test_repr(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/x", json={"id": "a", "api": "storage", "type": None})
    with Account(token="T") as account:
        result = account.get("x")
    assert repr(result).startswith("<Resource(storage ): {")
    assert repr(Response(result.client, ACC)) == f"<Response {ACC}>"


def test_list_children_have_the_response(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/x", json=listing([{"id": "a"}]))
    with Account(token="T") as account:
        child = account.get("x")[0]
    assert child.status_code == 200


def test_chained_verbs_use_resource_url(mocked: responses.RequestsMock) -> None:
    folder = {"id": "D", "api": "storage", "type": "folder"}
    mocked.add("GET", ACC + "/storage/folders/D", json=folder)
    mocked.add("GET", ACC + "/storage/folders/D/contents", json=listing([]))
    mocked.add("PATCH", ACC + "/storage/folders/D", json=folder)
    mocked.add("PUT", ACC + "/storage/folders/D/x", json={})
    mocked.add("POST", ACC + "/storage/folders/D/copy", json=folder)
    mocked.add("DELETE", ACC + "/storage/folders/D", status=204)
    with Account(token="T") as account:
        resource = account.get("storage/folders/D")
        resource.get("contents")
        resource.patch(json={"name": "n"})
        resource.put("x", data=b"1")
        resource.post("copy", json={"parent_id": "root"})
        resource.delete()
    assert [c.request.method for c in mocked.calls] == [
        "GET",
        "GET",
        "PATCH",
        "PUT",
        "POST",
        "DELETE",
    ]


# --- refresh ---------------------------------------------------------------------------------


def test_refresh_repeats_get_with_query_and_kloudless_headers(
    mocked: responses.RequestsMock,
) -> None:
    mocked.add("GET", ACC + "/x?a=1", json={"id": "x", "v": 1})
    mocked.add("GET", ACC + "/x?a=1", json={"id": "x", "v": 2})
    with Account(token="OLD") as account:
        resource = account.get("x", params={"a": "1"}, get_raw_data=True)
        account.auth.key = "NEW"
        resource.refresh()
    assert resource.data["v"] == 2
    second = mocked.calls[1].request
    assert second.headers["X-Kloudless-Raw-Data"] == "true"
    assert second.headers["Authorization"] == "Bearer NEW"


def test_refresh_after_post_gets_resource_url(mocked: responses.RequestsMock) -> None:
    mocked.add("POST", ACC + "/things", json={"id": "n1", "v": 1})
    mocked.add("GET", ACC + "/things/n1", json={"id": "n1", "v": 2})
    with Account(token="T") as account:
        created = account.post("things", json={})
        created.refresh()
    assert created.data["v"] == 2


def test_refresh_of_list_child_gets_child_url(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/things", json=listing([{"id": "a", "v": 1}]))
    mocked.add("GET", ACC + "/things/a", json={"id": "a", "v": 2})
    with Account(token="T") as account:
        child = account.get("things")[0]
        child.refresh()
    assert child.data["v"] == 2


def test_refresh_changes_class_when_kind_changes(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/x", json={"a": 1})
    mocked.add("GET", ACC + "/x", body="now text", content_type="text/plain")
    with Account(token="T") as account:
        result = account.get("x")
        assert type(result) is ResponseJson
        result.refresh()
    assert type(result) is Response
    assert result.text == "now text"


# --- paging ----------------------------------------------------------------------------------


def test_list_protocols(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": "a"}, {"id": "b"}], page=1, api="x"))
    mocked.add("GET", ACC + "/e", json=listing([]))
    with Account(token="T") as account:
        items = account.get("l")
        none = account.get("e")
    assert len(items) == 2
    assert bool(items) is True
    assert items[1].data["id"] == "b"
    assert [r.data["id"] for r in items[:1]] == ["a"]
    assert items.api == "x" and items.type == "object_list"
    assert len(none) == 0 and bool(none) is False
    assert none.page is empty and none.next_page is empty and none.api is empty
    assert "2 objects" in repr(items)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"page": 3, "next_page": "tok"}, "tok"),
        ({"page": 3}, 4),
        ({"page": True}, None),
        ({"page": "3"}, None),
        ({"next_page": None}, None),
        ({"next_page": ""}, None),
        ({"next_page": 0}, 0),
    ],
)
def test_next_page_identifier(data: dict, expected: object) -> None:
    with Client(token="T") as client:
        page = ResourceList(data=listing([{"id": "a"}], **data), url=ACC + "/l", client=client)
    assert page._get_next_page_identifier() == expected


def test_page_paging_sequence(mocked: responses.RequestsMock) -> None:
    mocked.add(
        "GET",
        ACC + "/storage/folders/root/contents?page_size=2&empty=",
        json=listing([{"id": 1}, {"id": 2}], page=1, next_page="P2"),
    )
    mocked.add(
        "GET",
        ACC + "/storage/folders/root/contents?page_size=2&empty=&page=P2",
        json=listing([{"id": 3}], page="P2", next_page=None),
    )
    with Account(token="T") as account:
        first = account.get("storage/folders/root/contents?page_size=2&empty=", get_raw_data=True)
        ids = [r.data["id"] for r in first.get_paging_iterator()]
    assert ids == [1, 2, 3]
    second = mocked.calls[1].request
    assert second.url.endswith("contents?page_size=2&empty=&page=P2")
    assert second.headers["X-Kloudless-Raw-Data"] == "true"


def test_numeric_paging_stops_on_404(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": 1}], page=1))
    mocked.add("GET", ACC + "/l?page=2", json=listing([{"id": 2}], page=2))
    mocked.add("GET", ACC + "/l?page=3", status=404, json={"message": "nope"})
    with Account(token="T") as account:
        first = account.get("l")
        assert [r.data["id"] for r in first.get_paging_iterator()] == [1, 2]
        with pytest.raises(exceptions.NoNextPage):
            first.get_next_page().get_next_page()


def test_numeric_paging_stops_on_empty_page(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": 1}], page=1))
    mocked.add("GET", ACC + "/l?page=2", json=listing([], page=2))
    with Account(token="T") as account:
        assert [r.data["id"] for r in account.get("l").get_paging_iterator()] == [1]
    assert len(mocked.calls) == 2


def test_repeated_next_page_ends_iteration(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": 1}], next_page="same"))
    mocked.add("GET", ACC + "/l?page=same", json=listing([{"id": 2}], next_page="same"))
    with Account(token="T") as account:
        assert [r.data["id"] for r in account.get("l").get_paging_iterator()] == [1, 2]
    assert len(mocked.calls) == 2


def test_other_errors_propagate_from_paging(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": 1}], page=1))
    mocked.add("GET", ACC + "/l?page=2", status=403, json={})
    with Account(token="T") as account, pytest.raises(exceptions.ForbiddenException):
        account.get("l").get_next_page()


def test_next_page_that_is_not_a_list_ends(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": 1}], page=1))
    mocked.add("GET", ACC + "/l?page=2", json={"weird": True})
    with Account(token="T") as account, pytest.raises(exceptions.NoNextPage):
        account.get("l").get_next_page()


def test_no_next_page_without_identifier() -> None:
    with Client(token="T") as client:
        page = ResourceList(data=listing([{"id": 1}]), url=ACC + "/l", client=client)
    with pytest.raises(exceptions.NoNextPage):
        page.get_next_page()


def test_hand_built_list_can_page(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l?page=2", json=listing([{"id": 2}], page=2, next_page=None))
    with Account(token="T") as account:
        page = ResourceList(data=listing([{"id": 1}], page=1), url=ACC + "/l", client=account)
        assert [r.data["id"] for r in page.get_paging_iterator()] == [1, 2]
    assert "X-Kloudless-Raw-Data" not in mocked.calls[0].request.headers


def test_paging_sends_current_credentials(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": 1}], page=1))
    mocked.add("GET", ACC + "/l?page=2", json=listing([{"id": 2}], page=2, next_page=None))
    with Account(token="OLD") as account:
        first = account.get("l")
        account.auth.key = "NEW"
        first.get_next_page()
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer NEW"


@pytest.mark.parametrize(("limit", "ids", "calls"), [(0, [], 1), (2, [1, 2], 1), (3, [1, 2, 3], 2)])
def test_max_resources(loose: responses.RequestsMock, limit: int, ids: list, calls: int) -> None:
    loose.add("GET", ACC + "/l", json=listing([{"id": 1}, {"id": 2}], page=1))
    loose.add("GET", ACC + "/l?page=2", json=listing([{"id": 3}, {"id": 4}], page=2))
    with Account(token="T") as account:
        first = account.get("l")
        assert [r.data["id"] for r in first.get_paging_iterator(max_resources=limit)] == ids
    assert len(loose.calls) == calls


def test_negative_max_resources_refused() -> None:
    with Client(token="T") as client:
        page = ResourceList(data=listing([]), url=ACC + "/l", client=client)
    with pytest.raises(exceptions.InvalidParameter):
        page.get_paging_iterator(max_resources=-1)
    with pytest.raises(exceptions.InvalidParameter):
        page.get_paging_iterator(max_resources=True)  # type: ignore[arg-type]


def test_iteration_is_lazy(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/l", json=listing([{"id": 1}], page=1))
    with Account(token="T") as account:
        iterator = account.get("l").get_paging_iterator()
        assert next(iterator).data["id"] == 1
    assert len(mocked.calls) == 1


# --- cursor paging ---------------------------------------------------------------------------


def test_event_cursor_sequence_and_latest_cursor(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/events/latest", json={"cursor": "C0"})
    mocked.add(
        "GET",
        ACC + "/events?cursor=C0&page_size=2",
        json=listing([{"id": "e1"}, {"id": "e2"}], cursor="C1"),
    )
    mocked.add(
        "GET", ACC + "/events?page_size=2&cursor=C1", json=listing([{"id": "e3"}], cursor="C2")
    )
    mocked.add("GET", ACC + "/events?page_size=2&cursor=C2", json=listing([], cursor="C2"))
    with Account(token="T") as account:
        latest = account.get("events/latest")
        assert type(latest) is ResponseJson
        events = account.get("events", params={"cursor": latest.data["cursor"], "page_size": 2})
        assert events.is_retrieving_events
        assert events.latest_cursor is None
        assert not hasattr(events, "page")
        ids = [e.data["id"] for e in events.get_paging_iterator()]
    assert ids == ["e1", "e2", "e3"]
    assert events.latest_cursor == "C2"
    assert mocked.calls[2].request.url.endswith("events?page_size=2&cursor=C1")


@pytest.mark.parametrize("cursor", [-1, "-1", None])
def test_event_cursor_end_markers(mocked: responses.RequestsMock, cursor: object) -> None:
    mocked.add("GET", ACC + "/events", json=listing([{"id": "e1"}], cursor=cursor))
    with Account(token="T") as account:
        events = account.get("events")
        assert [e.data["id"] for e in events.get_paging_iterator()] == ["e1"]
    assert events.latest_cursor == cursor


def test_event_list_without_cursor(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/accounts/7/events/", json=listing([{"id": "e1"}]))
    with Account(api_key="K", account_id=7) as account:
        events = account.get("events/")
        assert events.is_retrieving_events
        assert events.cursor is empty
        with pytest.raises(exceptions.NoNextPage) as info:
            events.get_next_page()
    assert info.value.cursor is empty


def test_empty_event_page_ends_without_request(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/events", json=listing([], cursor="C9"))
    with Account(token="T") as account:
        events = account.get("events")
        assert list(events.get_paging_iterator()) == []
    assert events.latest_cursor == "C9"


def test_repeated_cursor_ends(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/events?cursor=C1", json=listing([{"id": "e1"}], cursor="C1"))
    with Account(token="T") as account:
        events = account.get("events?cursor=C1")
        assert [e.data["id"] for e in events.get_paging_iterator()] == ["e1"]
    assert events.latest_cursor == "C1"
    assert len(mocked.calls) == 1


def test_cursor_list_detected_by_shape(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/crm/events", json=listing([{"id": 1}], cursor="X1"))
    mocked.add("GET", API + "/crm/events?cursor=X1", json=listing([], cursor="X1"))
    with Client(api_key="K") as client:
        events = client.get("crm/events")
        assert events.is_retrieving_events
        assert [e.data["id"] for e in events.get_paging_iterator()] == [1]


def test_calendar_events_use_page_mode(mocked: responses.RequestsMock) -> None:
    mocked.add(
        "GET", ACC + "/cal/calendars/primary/events", json=listing([{"id": "v"}], next_page="N")
    )
    with Account(token="T") as account:
        events = account.get("cal/calendars/primary/events")
    assert not events.is_retrieving_events
    assert events[0].url == ACC + "/cal/calendars/primary/events/v"


def test_latest_cursor_not_set_when_stopped_early(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/events", json=listing([{"id": 1}, {"id": 2}], cursor="C1"))
    with Account(token="T") as account:
        events = account.get("events")
        assert len(list(events.get_paging_iterator(max_resources=1))) == 1
    assert events.latest_cursor is None


def test_repeated_marker_across_pages_stops(mocked: responses.RequestsMock) -> None:
    # page 1 -> cursor A; page 2 -> cursor B; page 3 -> cursor A again (a loop): stop.
    mocked.add("GET", ACC + "/events", json=listing([{"id": 1}], cursor="A"))
    mocked.add("GET", ACC + "/events?cursor=A", json=listing([{"id": 2}], cursor="B"))
    mocked.add("GET", ACC + "/events?cursor=B", json=listing([{"id": 3}], cursor="A"))
    with Account(token="T") as account:
        events = account.get("events")
        assert [e.data["id"] for e in events.get_paging_iterator()] == [1, 2, 3]
    assert events.latest_cursor == "A"


def test_raw_response_attribute_on_hand_built_list() -> None:
    with Client(token="T") as client:
        page = ResourceList(data=listing([{"id": 1}]), url=ACC + "/l", client=client)
    assert page.response is None
    assert page[0].response is None
    assert isinstance(requests.Response(), requests.Response)


def test_remaining_zero_ends_without_request(mocked: responses.RequestsMock) -> None:
    mocked.add(
        "GET",
        ACC + "/events?cursor=0",
        json=listing([{"id": 1}], api="events", cursor=7, remaining=0),
    )
    with Account(token="T") as account:
        events = account.get("events?cursor=0")
        assert [e.data["id"] for e in events.get_paging_iterator()] == [1]
    assert events.latest_cursor == 7
    assert len(mocked.calls) == 1


def test_remaining_positive_fetches_next_page(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC + "/events", json=listing([{"id": 1}], cursor=1, remaining=1))
    mocked.add("GET", ACC + "/events?cursor=1", json=listing([{"id": 2}], cursor=2, remaining=0))
    with Account(token="T") as account:
        events = account.get("events")
        assert [e.data["id"] for e in events.get_paging_iterator()] == [1, 2]
    assert events.latest_cursor == 2


# --- the caller's headers on later pages and refresh() (as 2.x sent them) ---------------------


def test_paging_and_refresh_repeat_every_caller_header(mocked: responses.RequestsMock) -> None:
    url = ACC + "/storage/folders/root/contents"
    mocked.add("GET", url, json=listing([{"id": 1}], page=1, next_page=2))
    mocked.add("GET", url + "?page=2", json=listing([{"id": 2}], page=2, next_page=None))
    mocked.add("GET", ACC + "/x", json={"id": "x", "v": 1})
    mocked.add("GET", ACC + "/x", json={"id": "x", "v": 2})
    caller = {
        "X-Custom": "trace-1",
        "Accept-Language": "de",
        "Authorization": "Bearer STALE",
        "Idempotency-Key": "once",
        "Content-Type": "application/json",
        "Content-Length": "2",
    }
    with Account(token="OLD") as account:
        first = account.get("storage/folders/root/contents", headers=caller, get_raw_data=True)
        account.auth.key = "NEW"
        assert [r.data["id"] for r in first.get_paging_iterator()] == [1, 2]
        resource = account.get("x", headers={"X-Custom": "trace-2"}, impersonate_user_id=7)
        resource.refresh()
    assert resource.data["v"] == 2
    page2, refreshed = mocked.calls[1].request, mocked.calls[3].request
    assert page2.headers["X-Custom"] == "trace-1"
    assert page2.headers["Accept-Language"] == "de"
    assert page2.headers["X-Kloudless-Raw-Data"] == "true"
    assert page2.headers["Authorization"] == "Bearer NEW"  # never the stale one
    for never in ("Idempotency-Key", "Content-Type", "Content-Length"):
        assert never not in page2.headers, never
    assert refreshed.headers["X-Custom"] == "trace-2"
    assert refreshed.headers["X-Kloudless-As-User"] == "7"
    assert caller["Authorization"] == "Bearer STALE"  # the caller's dict is not changed


def test_event_pages_repeat_caller_headers(mocked: responses.RequestsMock) -> None:
    url = ACC + "/events"
    mocked.add("GET", url + "?cursor=0", json=listing([{"id": "f1"}], cursor=1, remaining=1))
    mocked.add("GET", url + "?cursor=1", json=listing([{"id": "f2"}], cursor=2, remaining=0))
    with Account(token="T") as account:
        events = account.get("events", params={"cursor": 0}, headers={"X-Trace": "t"})
        assert [e.data["id"] for e in events.get_paging_iterator()] == ["f1", "f2"]
    assert mocked.calls[1].request.headers["X-Trace"] == "t"
