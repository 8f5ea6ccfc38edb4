"""The fake Kubernetes API's object store: versions, generations, no-op writes, cascade, history."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.kube.controllers import restarts_by
from sandbox.kube.resources import BY_KIND
from sandbox.kube.store import ApiError, ObjectStore, WatchEvent

NAMESPACE, CONFIG_MAP, DEPLOYMENT = (
    BY_KIND["Namespace"],
    BY_KIND["ConfigMap"],
    BY_KIND["Deployment"],
)


def deployment(image: str) -> dict[str, object]:
    return {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    store = ObjectStore(tmp_path / "objects.json")
    store.create(NAMESPACE, "", {"metadata": {"name": "ns"}})
    return store


def test_generation_moves_with_the_spec_and_versions_with_every_write(store: ObjectStore) -> None:
    created, _ = store.apply(DEPLOYMENT, "ns", "web", deployment("a:1"), "me")
    same, _ = store.apply(DEPLOYMENT, "ns", "web", deployment("a:1"), "me")
    changed, _ = store.apply(DEPLOYMENT, "ns", "web", deployment("a:2"), "me")

    assert created["metadata"]["generation"] == 1
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert changed["metadata"]["uid"] == created["metadata"]["uid"]
    assert changed["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": "25%",
        "maxUnavailable": "25%",
    }
    assert changed["spec"]["progressDeadlineSeconds"] == 600


def test_validation_and_missing_namespace(store: ObjectStore) -> None:
    broken = deployment("a:1")
    broken["spec"]["template"]["metadata"]["labels"] = {"app": "other"}  # type: ignore[index]
    with pytest.raises(ApiError) as invalid:
        store.create(DEPLOYMENT, "ns", broken)
    assert invalid.value.code == 422
    with pytest.raises(ApiError) as missing:
        store.create(CONFIG_MAP, "absent", {"metadata": {"name": "c"}})
    assert (missing.value.code, missing.value.message) == (404, 'namespaces "absent" not found')


def test_deleting_a_namespace_deletes_its_objects(store: ObjectStore) -> None:
    store.create(CONFIG_MAP, "ns", {"metadata": {"name": "c"}})
    seen: list[WatchEvent] = []
    store.subscribe(seen.append)

    answer = store.delete(NAMESPACE, "", "ns")

    assert answer["status"]["phase"] == "Terminating"
    assert [(e.type, e.obj["kind"]) for e in seen] == [
        ("DELETED", "ConfigMap"),
        ("DELETED", "Namespace"),
    ]
    assert store.list_objects(CONFIG_MAP, None)[0] == []


def test_watch_history_and_too_old_versions(store: ObjectStore, tmp_path: Path) -> None:
    start = store.resource_version
    store.create(CONFIG_MAP, "ns", {"metadata": {"name": "c"}})
    backlog = store.subscribe(lambda _event: None, since=start)
    assert [e.type for e in backlog] == ["ADDED"]

    store.flush()
    reloaded = ObjectStore(tmp_path / "objects.json")
    assert reloaded.get(CONFIG_MAP, "ns", "c")["metadata"]["uid"]
    with pytest.raises(ApiError) as gone:
        reloaded.subscribe(lambda _event: None, since=start)
    assert gone.value.code == 410


def test_crash_loop_back_off_doubles() -> None:
    assert [restarts_by(t) for t in (0.4, 0.5, 1.4, 1.5, 3.5, 7.5)] == [0, 1, 1, 2, 3, 4]
