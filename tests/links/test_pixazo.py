"""PixazoImageLink: reading media URLs from XCom, unique names and keys, and DAG serialization."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
import pytest
from airflow.sdk import DAG
from airflow.sdk.execution_time.xcom import XCom
from airflow.serialization.serialized_objects import DagSerialization

from airflow_provider_pixazo.events import publish_result
from airflow_provider_pixazo.links import pixazo as links_module
from airflow_provider_pixazo.links.pixazo import (
    MEDIA_URLS_XCOM_KEY,
    PixazoImageLink,
    declared_links,
    image_links,
    persist_media_urls,
    remember_media_urls,
)
from airflow_provider_pixazo.responses import RequestResult, RequestStatus
from airflow_provider_pixazo.sensors.pixazo import PixazoRequestSensor

URLS = ["https://cdn.test/0.png", "https://cdn.test/1.png", "https://cdn.test/2.png"]


class TIKey:
    dag_id = "pixazo_dag"
    task_id = "wait"
    run_id = "manual__1"
    map_index = -1


@pytest.fixture
def xcom_store(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], Any]:
    """Replace the XCom read at the edge (the task SDK's API call) with a dict."""
    store: dict[tuple[str, str], Any] = {}
    reads: list[dict[str, Any]] = []

    def fake_get_one(**kwargs: Any) -> Any:
        reads.append(kwargs)
        return store.get((kwargs["task_id"], kwargs["key"]))

    monkeypatch.setattr(XCom, "get_one", staticmethod(fake_get_one))
    store[("__reads__", "")] = reads
    return store


@pytest.mark.parametrize(("index", "expected"), [(0, URLS[0]), (1, URLS[1]), (2, URLS[2]), (3, ""), (9, "")])
def test_get_link_returns_url_at_index(xcom_store: dict[tuple[str, str], Any], index: int, expected: str) -> None:
    xcom_store[("wait", MEDIA_URLS_XCOM_KEY)] = URLS
    link = PixazoImageLink(index=index)
    assert link.get_link(None, ti_key=TIKey()) == expected  # type: ignore[arg-type]
    read = xcom_store[("__reads__", "")][-1]
    assert read == {
        "key": MEDIA_URLS_XCOM_KEY,
        "task_id": "wait",
        "dag_id": "pixazo_dag",
        "run_id": "manual__1",
        "map_index": -1,
    }


@pytest.mark.parametrize("stored", [None, [], {"not": "a list"}, [None, 42]])
def test_get_link_is_empty_without_usable_urls(xcom_store: dict[tuple[str, str], Any], stored: Any) -> None:
    if stored is not None:
        xcom_store[("wait", MEDIA_URLS_XCOM_KEY)] = stored
    assert PixazoImageLink(index=0).get_link(None, ti_key=TIKey()) == ""  # type: ignore[arg-type]


def test_names_and_xcom_keys_are_unique() -> None:
    links = image_links()
    assert len(links) == 10
    assert [link.index for link in links] == list(range(10))
    assert links[0].name == "Pixazo image 1"
    assert links[9].name == "Pixazo image 10"
    assert len({link.name for link in links}) == 10
    assert len({link.xcom_key for link in links}) == 10
    assert image_links(3) == (PixazoImageLink(0), PixazoImageLink(1), PixazoImageLink(2))


@pytest.mark.parametrize("bad", [-1, "1", True, 1.5])
def test_index_must_be_non_negative_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="index"):
        PixazoImageLink(index=bad)


def test_link_is_an_attrs_class_with_index() -> None:
    link = PixazoImageLink(index=4)
    assert attrs.asdict(link) == {"index": 4}
    assert link == PixazoImageLink(index=4)
    assert link != PixazoImageLink(index=5)


def test_persist_media_urls_pushes_a_list() -> None:
    pushed: dict[str, Any] = {}

    class TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pushed[key] = value

    persist_media_urls({"ti": TI()}, tuple(URLS))  # type: ignore[typeddict-item]
    assert pushed == {MEDIA_URLS_XCOM_KEY: URLS}


class TryKey(TIKey):
    try_number = 1


@pytest.fixture(autouse=True)
def _forget_pushes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh task process: nothing pushed yet."""
    monkeypatch.setattr(links_module, "_PUSHED", {})


def _reads(xcom_store: dict[tuple[str, str], Any]) -> int:
    return len(xcom_store[("__reads__", "")])


def test_a_tasks_ten_buttons_read_its_urls_once(xcom_store: dict[tuple[str, str], Any]) -> None:
    xcom_store[("wait", MEDIA_URLS_XCOM_KEY)] = URLS
    answers = [link.get_link(None, ti_key=TryKey()) for link in image_links()]  # type: ignore[arg-type]
    assert answers == [*URLS, *[""] * 7]
    assert _reads(xcom_store) == 1  # Airflow's end-of-task resolution calls get_link once per button


def test_urls_this_process_pushed_are_not_read_back(xcom_store: dict[tuple[str, str], Any]) -> None:
    class TI(TryKey):
        def xcom_push(self, key: str, value: Any) -> None:
            xcom_store[(self.task_id, key)] = value

    persist_media_urls({"ti": TI()}, [])  # type: ignore[typeddict-item]
    assert [link.get_link(None, ti_key=TryKey()) for link in image_links()] == [""] * 10  # type: ignore[arg-type]
    # The wait's result, pushed by the same process later in the try (resumed under dag.test()).
    publish_result({"ti": TI()}, RequestResult(request_id="r", status=RequestStatus.COMPLETED, media_urls=tuple(URLS)))  # type: ignore[typeddict-item]
    assert [link.get_link(None, ti_key=TryKey()) for link in image_links(4)] == [*URLS, ""]  # type: ignore[arg-type]
    assert _reads(xcom_store) == 0


def test_what_one_try_pushed_does_not_answer_for_another(xcom_store: dict[tuple[str, str], Any]) -> None:
    class Retry(TIKey):
        try_number = 2

    remember_media_urls(TryKey(), URLS)
    xcom_store[("wait", MEDIA_URLS_XCOM_KEY)] = URLS[:1]
    assert PixazoImageLink(index=1).get_link(None, ti_key=Retry()) == ""  # type: ignore[arg-type]
    assert _reads(xcom_store) == 1


def test_the_memo_stays_bounded() -> None:
    for number in range(links_module._PUSHED_MAX + 50):
        remember_media_urls(type("K", (TIKey,), {"try_number": number})(), URLS)
    assert len(links_module._PUSHED) == links_module._PUSHED_MAX


def test_a_running_task_shows_one_link_per_image_and_the_class_every_one() -> None:
    from airflow_provider_pixazo.operators.pixazo import PixazoGenerateImageOperator

    class TI(TryKey):
        def xcom_push(self, key: str, value: Any) -> None:
            pass

    op = PixazoGenerateImageOperator(task_id="generate", prompt="A lighthouse")
    assert op.operator_extra_links == image_links()  # parsed, serialized, shown in the UI: every button
    persist_media_urls({"ti": TI(), "task": op}, [])  # type: ignore[typeddict-item]
    # Airflow stores one XCom per link at the task's end (one API call each): none without images.
    assert op.operator_extra_links == ()
    publish_result(
        {"ti": TI(), "task": op},  # type: ignore[typeddict-item]
        RequestResult(request_id="r", status=RequestStatus.COMPLETED, media_urls=tuple(URLS)),
    )
    assert op.operator_extra_links == image_links(3)
    assert PixazoGenerateImageOperator.operator_extra_links == image_links()
    assert PixazoRequestSensor.operator_extra_links == image_links()
    assert declared_links(op) == image_links()  # what a trigger that ends the task stores links for
    other = PixazoGenerateImageOperator(task_id="other", prompt="A lighthouse")
    assert other.operator_extra_links == image_links()  # per task, not per class


def test_declared_links_of_a_task_that_sets_its_own() -> None:
    class Own(PixazoRequestSensor):
        operator_extra_links = (PixazoImageLink(0),)

    sensor = Own(task_id="wait", request_id="r")
    assert declared_links(sensor) == (PixazoImageLink(0),)


def test_links_round_trip_through_dag_serialization() -> None:
    with DAG("pixazo_links", schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
        PixazoRequestSensor(task_id="wait", request_id="gpt-image-2_abc")

    encoded = DagSerialization.to_dict(dag)
    task = encoded["dag"]["tasks"][0]
    ops = task.get("__var", task)
    assert ops["_operator_extra_links"] == {link.name: link.xcom_key for link in image_links()}

    restored = DagSerialization.from_dict(encoded).get_task("wait")
    by_name = {link.name: link.xcom_key for link in restored.operator_extra_links}
    assert by_name == {f"Pixazo image {i + 1}": f"_link_PixazoImageLink_{i}" for i in range(10)}


@attrs.define()
class OwnURLLink(PixazoImageLink):
    """Opens a page about the image instead: only its own get_link, on a worker, knows that URL."""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return f"https://gallery.test/{self.index}"


@attrs.define()
class OwnKeyLink(PixazoImageLink):
    @property
    def xcom_key(self) -> str:
        return f"gallery_{self.index}"


@attrs.define()
class RenamedLink(PixazoImageLink):
    """A subclass that only renames the class: its key follows, and the trigger computes it the same way."""


def test_a_trigger_stores_only_links_resolved_exactly_as_ours() -> None:
    from airflow_provider_pixazo.links.pixazo import image_link_keys

    assert image_link_keys(image_links(2)) == {"_link_PixazoImageLink_0": 0, "_link_PixazoImageLink_1": 1}
    assert image_link_keys([*image_links(2), OwnURLLink(index=2)]) is None
    assert image_link_keys([OwnKeyLink(index=0)]) is None
    assert image_link_keys([RenamedLink(index=1)]) == {"_link_RenamedLink_1": 1}
