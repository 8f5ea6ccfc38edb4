"""The fake Kubernetes API's patch semantics: JSON patch, merge patch, strategic merge, apply."""

from __future__ import annotations

import pytest

from sandbox.kube.patch import (
    PatchError,
    json_merge_patch,
    json_patch,
    server_side_apply,
    strategic_merge_patch,
)

POD_SPEC = {
    "containers": [
        {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "s:1"},
    ],
    "tolerations": [{"key": "x"}],
}


def test_json_patch_operations() -> None:
    document = {"a": {"b": [1, 2]}, "c": 1}
    patched = json_patch(
        document,
        [
            {"op": "add", "path": "/a/b/1", "value": 9},
            {"op": "replace", "path": "/c", "value": 2},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e"},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "test", "path": "/e", "value": 2},
            {"op": "add", "path": "/a/b/-", "value": 3},
        ],
    )
    assert patched == {"a": {"b": [9, 2, 3]}, "c": 2, "e": 2}
    assert document == {"a": {"b": [1, 2]}, "c": 1}
    with pytest.raises(PatchError):
        json_patch(document, [{"op": "remove", "path": "/missing"}])
    with pytest.raises(PatchError):
        json_patch(document, [{"op": "test", "path": "/c", "value": 5}])


def test_merge_patch_replaces_lists_and_deletes_with_null() -> None:
    patched = json_merge_patch(
        {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}, {"a": None, "b": {"c": 5}, "l": [3]}
    )
    assert patched == {"b": {"c": 5, "d": 3}, "l": [3]}


def test_strategic_merge_keys_containers_by_name() -> None:
    patch = {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"name": "app", "image": "a:2"}],
    }
    patched = strategic_merge_patch(POD_SPEC, patch)
    assert [c["image"] for c in patched["containers"]] == ["a:2", "s:1"]
    assert patched["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_strategic_merge_directives() -> None:
    deleted = strategic_merge_patch(
        POD_SPEC, {"containers": [{"name": "sidecar", "$patch": "delete"}]}
    )
    assert [c["name"] for c in deleted["containers"]] == ["app"]
    replaced = strategic_merge_patch(
        POD_SPEC, {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]}
    )
    assert replaced["containers"] == [{"name": "only", "image": "o:1"}]
    unkeyed = strategic_merge_patch(POD_SPEC, {"tolerations": [{"key": "y"}]})
    assert unkeyed["tolerations"] == [{"key": "y"}]
    with pytest.raises(PatchError):
        strategic_merge_patch(POD_SPEC, {"containers": [{"image": "no-name"}]})


def test_ports_merge_on_their_port_number() -> None:
    service = {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}
    patched = strategic_merge_patch(service, {"ports": [{"port": 80, "targetPort": 8080}]})
    assert patched["ports"] == [
        {"port": 80, "name": "http", "targetPort": 8080},
        {"port": 443, "name": "https"},
    ]


def test_apply_removes_only_what_the_manager_stopped_setting() -> None:
    live = {"metadata": {"labels": {"mine": "1", "theirs": "1"}}, "data": {"a": "1", "b": "1"}}
    previous = {"metadata": {"labels": {"mine": "1"}}, "data": {"a": "1"}}
    applied = {"metadata": {"labels": {}}, "data": {"c": "1"}}

    merged = server_side_apply(live, previous, applied)

    assert merged == {"metadata": {"labels": {"theirs": "1"}}, "data": {"b": "1", "c": "1"}}


def test_apply_drops_keyed_list_items_the_manager_no_longer_lists() -> None:
    previous = {"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": "1"}]}]}}
    live = {
        "spec": {
            "containers": [{"name": "app", "image": "a", "env": [{"name": "A", "value": "1"}]}]
        }
    }
    applied = {"spec": {"containers": [{"name": "app", "image": "b"}]}}

    merged = server_side_apply(live, previous, applied)

    assert merged == {"spec": {"containers": [{"name": "app", "image": "b"}]}}
