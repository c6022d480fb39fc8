"""
A trigger's XCom pushes cross the triggerer's real comms to its supervisor, on this Airflow's version.

The trigger runs on the triggerer's event loop and ``XCom.set`` is synchronous: Airflow 3.3 bridges a
call from another thread to the loop (``run_coroutine_threadsafe``), Airflow 3.2 through asgiref's
``async_to_sync``, which finds the loop only from a ``sync_to_async`` thread. Here the runner's own
``TriggerCommsDecoder`` talks over a socket pair to a supervisor played by a thread that answers
each frame as the triggerer's supervisor does after ``client.xcoms.set`` (an empty body, or an error).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import msgspec
import pytest

from airflow_provider_pixazo.triggers._task_xcoms import push_xcoms


class TaskInstanceKeys:
    dag_id = "pixazo_dag"
    task_id = "wait"
    run_id = "manual__2027-01-15"
    map_index = -1


def supervise(sock: socket.socket, received: list[dict[str, Any]], fail_on: str | None) -> None:
    """Answer each request frame until the runner closes its end."""
    from airflow.sdk.execution_time.comms import _RequestFrame, _ResponseFrame

    decoder = msgspec.msgpack.Decoder(_RequestFrame)
    with sock:
        while header := sock.recv(4, socket.MSG_WAITALL):
            frame = decoder.decode(sock.recv(int.from_bytes(header, "big"), socket.MSG_WAITALL))
            received.append(frame.body)
            error = None
            if frame.body.get("key") == fail_on:
                error = {"type": "ErrorResponse", "error": "API_SERVER_ERROR", "detail": {"status_code": 500}}
            sock.sendall(_ResponseFrame(id=frame.id, body=None, error=error).as_bytes())


async def connected_comms(monkeypatch: pytest.MonkeyPatch, fail_on: str | None = None) -> tuple[Any, list[Any]]:
    from airflow.jobs.triggerer_job_runner import TriggerCommsDecoder
    from airflow.sdk.execution_time import task_runner

    runner_end, supervisor_end = socket.socketpair()
    received: list[dict[str, Any]] = []
    threading.Thread(target=supervise, args=(supervisor_end, received, fail_on), daemon=True).start()
    reader, writer = await asyncio.open_connection(sock=runner_end)
    comms = TriggerCommsDecoder(async_writer=writer, async_reader=reader, socket=runner_end)
    if hasattr(comms, "start_reader"):  # Airflow >= 3.3: responses are read by a task on the loop
        await comms.start_reader()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    return writer, received


@pytest.mark.asyncio
async def test_each_xcom_reaches_the_supervisor_as_a_tasks_set_xcom(monkeypatch: pytest.MonkeyPatch) -> None:
    writer, received = await connected_comms(monkeypatch)
    xcoms = {"return_value": "gpt-image-2_1", "pixazo_result": {"status": "COMPLETED"}, "pixazo_media_urls": ["u"]}

    # The loop stays free while the pushes wait on their answers.
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.wait_for(push_xcoms(TaskInstanceKeys(), xcoms), timeout=30)
    ticker.cancel()
    writer.close()

    assert [(body["type"], body["key"], body["value"]) for body in received] == [
        ("SetXCom", key, value) for key, value in xcoms.items()
    ]
    assert {(b["dag_id"], b["task_id"], b["run_id"], b["map_index"]) for b in received} == {
        ("pixazo_dag", "wait", "manual__2027-01-15", -1)
    }
    assert ticks > 0


@pytest.mark.asyncio
async def test_an_api_error_reaches_the_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowRuntimeError

    writer, received = await connected_comms(monkeypatch, fail_on="pixazo_result")
    with pytest.raises(AirflowRuntimeError):
        await asyncio.wait_for(
            push_xcoms(TaskInstanceKeys(), {"return_value": "x", "pixazo_result": {}, "pixazo_media_urls": []}),
            timeout=30,
        )
    writer.close()
    assert [body["key"] for body in received] == ["return_value", "pixazo_result"]
