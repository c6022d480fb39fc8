"""What Pixazo answers, parsed: request ids, statuses, submissions and results (the API page's seed bodies)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.responses import RequestResult, RequestStatus, Submission, validate_request_id

# -- request ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../x", "a/b", "a?b", "", " x", "%2F", "a b", "x#y", None, 12, "-x", "a" * 257])
def test_validate_request_id_refuses(bad: Any) -> None:
    with pytest.raises(PixazoValidationError) as info:
        validate_request_id(bad)
    assert info.value.parameter == "request_id"
    assert repr(bad)[:100] in str(info.value)


@pytest.mark.parametrize(
    "good",
    [
        "gpt-image-2_019dabcd-1234-5678-9abc-def012345678",
        "gpt-image-1-5-api-923_019dxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        "airflow-connection-test",
        "a" * 256,
    ],
)
def test_validate_request_id_accepts(good: str) -> None:
    assert validate_request_id(good) == good


# -- responses --------------------------------------------------------------------------------------

ID15 = "gpt-image-1-5-api-923_019dxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
ID2 = "gpt-image-2_019dxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"

SEED_COMPLETED = {
    "request_id": ID15,
    "status": "COMPLETED",
    "model_id": "gpt-image-1-5-api-923",
    "error": None,
    "output": {
        "media_url": [f"https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/{ID15}/output.ext"],
        "media_type": "application/octet-stream",
    },
    "created_at": "2026-03-31T10:00:00.000Z",
    "updated_at": "2026-03-31T10:00:15.000Z",
    "completed_at": "2026-03-31T10:00:15.000Z",
}
SEED_WEBHOOK_COMPLETED = {
    "request_id": ID2,
    "status": "COMPLETED",
    "model_id": "gpt-image-2",
    "error": None,
    "output": {
        "media_url": [f"https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/{ID2}/output.png"],
        "media_type": "image/png",
    },
    "created_at": "2026-05-22T13:17:32.110Z",
    "updated_at": "2026-05-22 13:19:23",
    "completed_at": "2026-05-22 13:19:23",
}
SEED_ERROR = {
    "request_id": ID2,
    "status": "ERROR",
    "model_id": "gpt-image-2",
    "error": "Description of the error",
    "output": None,
}
SEED_FAILED = {
    "request_id": ID2,
    "status": "FAILED",
    "model_id": "gpt-image-2",
    "error": "Your request was rejected by the safety system",
    "output": None,
    "created_at": "...",
    "updated_at": "...",
    "completed_at": "...",
}


def test_result_from_seed_completed() -> None:
    result = RequestResult.from_api(SEED_COMPLETED)
    assert result.request_id == ID15
    assert result.status is RequestStatus.COMPLETED
    assert result.status.is_terminal
    assert result.status.is_success
    assert result.media_urls == (SEED_COMPLETED["output"]["media_url"][0],)  # type: ignore[index]
    assert result.media_type == "application/octet-stream"
    assert result.error is None
    assert result.model_id == "gpt-image-1-5-api-923"
    assert result.created_at == "2026-03-31T10:00:00.000Z"
    assert result.completed_at == "2026-03-31T10:00:15.000Z"


def test_result_from_seed_webhook_completed() -> None:
    result = RequestResult.from_api(SEED_WEBHOOK_COMPLETED)
    assert result.media_type == "image/png"
    assert result.media_urls[0].endswith("/output.png")
    assert result.updated_at == "2026-05-22 13:19:23"


@pytest.mark.parametrize(
    ("body", "status"),
    [(SEED_ERROR, RequestStatus.ERROR), (SEED_FAILED, RequestStatus.FAILED)],
    ids=["ERROR", "FAILED"],
)
def test_result_from_seed_failures(body: dict[str, Any], status: RequestStatus) -> None:
    result = RequestResult.from_api(body)
    assert result.status is status
    assert result.status.is_terminal
    assert not result.status.is_success
    assert result.error == body["error"]
    assert result.media_urls == ()
    assert result.media_type is None


@pytest.mark.parametrize("status", ["QUEUED", "PROCESSING", "processing"])
def test_result_pending_statuses(status: str) -> None:
    result = RequestResult.from_api({"request_id": ID2, "status": status, "output": None})
    assert result.status.value == status.upper()
    assert not result.status.is_terminal


def test_result_refuses_bad_bodies() -> None:
    with pytest.raises(ValueError, match="unknown status 'DONE'"):
        RequestResult.from_api({"request_id": ID2, "status": "DONE"})
    with pytest.raises(ValueError, match="not an object"):
        RequestResult.from_api(["COMPLETED"])
    with pytest.raises(PixazoValidationError):
        RequestResult.from_api({"request_id": "../../admin", "status": "COMPLETED"})


@pytest.mark.parametrize("body", [SEED_COMPLETED, SEED_WEBHOOK_COMPLETED, SEED_ERROR, SEED_FAILED])
def test_result_dict_round_trip(body: dict[str, Any]) -> None:
    result = RequestResult.from_api(body)
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["status"] == body["status"]
    assert RequestResult.from_dict(json.loads(json.dumps(data))) == result


def test_submission_from_seed() -> None:
    body = {"request_id": ID2, "status": "QUEUED", "polling_url": f"https://gateway.pixazo.ai/v2/requests/status/{ID2}"}
    submission = Submission.from_api(body)
    assert submission == Submission(ID2, RequestStatus.QUEUED, body["polling_url"])
    assert Submission.from_api({"request_id": ID2}).status is RequestStatus.QUEUED
    with pytest.raises(PixazoValidationError):
        Submission.from_api({"status": "QUEUED"})
    with pytest.raises(ValueError, match="not a JSON object"):
        Submission.from_api("QUEUED")
