"""The batch's items: read from a list or a JSONL/CSV file, validated with the single operators' rules."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_pixazo.batch._items import build_items, check_spend, load_prompts, parse_prompts_file
from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.models import build_generate_request


def items(raw: list[Any], **defaults: Any) -> Any:
    return build_items(raw, model=defaults.pop("model", "gpt-image-2"), defaults=defaults)


def test_strings_and_dicts_become_the_single_operators_requests() -> None:
    built = items(["a red fox", {"prompt": "a blue jay", "key": "jay", "size": "1536x1024"}], quality="low")
    assert [(i.index, i.key, i.prompt) for i in built] == [(0, "0", "a red fox"), (1, "jay", "a blue jay")]
    # The same builder as the single operators: same path, body and headers.
    assert built[0].request == build_generate_request("a red fox", quality="low")
    assert built[1].request == build_generate_request("a blue jay", quality="low", size="1536x1024")
    assert built[1].request.body == {"prompt": "a blue jay", "quality": "low", "size": "1536x1024"}


def test_an_item_overrides_n_and_the_images_add_up() -> None:
    built = items(["a", {"prompt": "b", "n": 3}, {"prompt": "c", "n": "2"}], n=1)
    assert [i.images for i in built] == [1, 3, 2]
    assert check_spend(built, 6) == 6


def test_spend_guard_names_both_numbers() -> None:
    built = items([{"prompt": "p", "n": 4}] * 1 + ["q"] * 3)
    with pytest.raises(PixazoValidationError) as err:
        check_spend(built, 6)
    assert err.value.parameter == "max_images"
    assert "ask for 7 image(s)" in str(err.value)
    assert "max_images=6" in str(err.value)


def test_fingerprint_changes_with_the_request_only() -> None:
    a, b, c = items(["same", "same", "other"])
    assert a.fingerprint == b.fingerprint != c.fingerprint


@pytest.mark.parametrize(
    ("raw", "defaults", "parameter", "in_message"),
    [
        ([{"prompt": "x", "colour": "red"}], {}, "prompts[0].colour", "an item sets only prompt, key, size"),
        (["ok", {"prompt": "x", "key": "k", "quality": "ultra"}], {}, "prompts[1] (key 'k').quality", "one of low"),
        (["", "fine"], {}, "prompts[0].prompt", "non-empty string"),
        ([{"key": "nokey"}], {}, "prompts[0] (key 'nokey').prompt", "non-empty string"),
        ([42], {}, "prompts[0]", "a prompt string, or a dict"),
        ([{"prompt": "x", "key": "../up"}], {}, "prompts[0].key", "letters, digits"),
        ([{"prompt": "x", "key": "a"}, {"prompt": "y", "key": "a"}], {}, "prompts[1].key", "prompts[0] has it too"),
        (["x", {"prompt": "y", "key": "0"}], {}, "prompts[1].key", "prompts[0] has it too"),
        ([{"prompt": "x", "background": "transparent"}], {}, "prompts[0].background", "gpt-image-2 has no"),
        ([{"prompt": "x", "n": 11}], {}, "prompts[0].n", "an integer from 1 to 10"),
        (["x"], {"model": "dall-e"}, "model", "known models"),
        (["x", "y"], {"quality": "ultra"}, "quality", "one of low"),
        ([{"prompt": "x", "size": "auto"}], {"size": "7x7"}, "size", "custom WIDTHxHEIGHT"),
    ],
)
def test_an_invalid_item_is_named_with_the_parameter_value_and_rule(
    raw: list[Any], defaults: dict[str, Any], parameter: str, in_message: str
) -> None:
    with pytest.raises(PixazoValidationError) as err:
        items(raw, **defaults)
    assert err.value.parameter == parameter
    assert in_message in str(err.value)


def test_every_invalid_item_is_logged_and_the_error_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.batch")
    with caplog.at_level(logging.ERROR, "test.batch"), pytest.raises(PixazoValidationError) as err:
        build_items(["", "ok", {"prompt": "x", "size": "9x9"}], model="gpt-image-2", defaults={}, log=log)
    assert err.value.parameter == "prompts[0].prompt"
    assert "and 1 more invalid item(s)" in str(err.value)
    assert "prompts[2].size" in caplog.text


@pytest.mark.parametrize(
    ("prompts", "prompts_uri", "in_message"),
    [
        ([], None, "at least one prompt"),
        (None, None, "neither was given"),
        ("None", "", "neither was given"),
        (["a"], "file:///tmp/p.jsonl", "both were given"),
        ({"prompt": "a"}, None, "a list of prompt strings"),
        ("not a list", None, "a JSON or Python list"),
    ],
)
def test_prompts_or_prompts_uri_exactly_one(prompts: Any, prompts_uri: Any, in_message: str) -> None:
    with pytest.raises(PixazoValidationError) as err:
        load_prompts(prompts, prompts_uri, None)
    assert in_message in str(err.value)


@pytest.mark.parametrize("text", ['["a", "b"]', "['a', 'b']"])
def test_a_rendered_xcom_list_is_read_back(text: str) -> None:
    # "{{ ti.xcom_pull(...) }}" without native rendering gives the list's JSON or repr.
    assert load_prompts(text, None, None) == ["a", "b"]


def test_jsonl_file_with_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "a", "key": "k1"}\n\n"just a string"\n{"prompt": "c", "n": 2}\n')
    expected = [{"prompt": "a", "key": "k1"}, "just a string", {"prompt": "c", "n": 2}]
    assert load_prompts(None, path.as_uri(), None) == expected


def test_malformed_jsonl_line_is_named_by_its_number() -> None:
    with pytest.raises(PixazoValidationError) as err:
        parse_prompts_file('{"prompt": "a"}\n\n{"prompt": "b",}\n', "s3://b/prompts.jsonl")
    assert err.value.parameter == "prompts_uri"
    assert "line 3 is not JSON" in str(err.value)


def test_csv_file_cells_are_text_and_empty_cells_are_unset(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text("key,prompt,n,quality\nfox,a red fox,2,\njay,a blue jay,,high\n")
    raw = load_prompts(None, path.as_uri(), None)
    assert raw == [
        {"key": "fox", "prompt": "a red fox", "n": "2"},
        {"key": "jay", "prompt": "a blue jay", "quality": "high"},
    ]
    fox, jay = items(raw)
    assert (fox.images, fox.request.body) == (2, {"prompt": "a red fox", "n": 2})
    assert jay.request.body == {"prompt": "a blue jay", "quality": "high"}


@pytest.mark.parametrize(
    ("name", "text", "in_message"),
    [
        ("p.csv", "text,n\nhello,1\n", "names a 'prompt' column"),
        ("p.txt", "hello\n", "a .jsonl (or .ndjson) or .csv file"),
        ("p.jsonl", "\n\n", "at least one prompt"),
        ("p.csv", "prompt\n", "at least one prompt"),
    ],
)
def test_unusable_prompts_files(name: str, text: str, in_message: str) -> None:
    with pytest.raises(PixazoValidationError) as err:
        parse_prompts_file(text, name)
    assert in_message in str(err.value)


def test_a_missing_prompts_file_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(PixazoValidationError) as err:
        load_prompts(None, (tmp_path / "absent.jsonl").as_uri(), None)
    assert err.value.parameter == "prompts_uri"
    assert "FileNotFoundError" in str(err.value)


def test_a_prompts_conn_id_naming_no_connection_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('"a"\n')
    with pytest.raises(PixazoValidationError) as err:
        load_prompts(None, path.as_uri(), "no_such_connection")
    assert err.value.parameter == "prompts_conn_id"
