"""
The batch's items: prompts read from a list or a file, each validated into a request before any submit.

``prompts`` is a list of strings, or of dicts with ``prompt``, an optional unique ``key`` (default:
the item's index) and image options overriding the operator's; ``prompts_uri`` is the same as a JSONL
or CSV file on any ``ObjectStoragePath``. Every item is built with the single operators' own builder
(:func:`~airflow_provider_pixazo.models.build_generate_request`), so the rules are the same, and an
error names the item (``prompts[3]``, with its key), the parameter, the value and what is allowed.
Not here: submitting, waiting or storing.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_pixazo.exceptions import PixazoValidationError
from airflow_provider_pixazo.models import SubmitRequest, build_generate_request
from airflow_provider_pixazo.options import IMAGE_OPTIONS, _rule

__all__ = [
    "ITEM_FIELDS",
    "MAX_PROMPTS_FILE_BYTES",
    "BatchItem",
    "build_items",
    "check_spend",
    "load_prompts",
    "parse_prompts_file",
]

#: What an item may set: its prompt, its key, and any image option.
ITEM_FIELDS: tuple[str, ...] = ("prompt", "key", *IMAGE_OPTIONS)
#: A prompts file larger than this is refused (a million short prompts fit well under it).
MAX_PROMPTS_FILE_BYTES = 256 * 1024 * 1024
# Keys name the item's files under the destination, so they are path-safe by construction.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_KEY_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the item's files)"
# At most this many invalid items are listed in the log before the task fails on the first.
_LISTED_ERRORS = 50


@dataclass(frozen=True)
class BatchItem:
    """
    One prompt of the batch, validated.

    :param index: its position in the batch (0-based).
    :param key: its unique key (the index as text when none was given); names its files.
    :param prompt: the prompt.
    :param request: the validated submit, as the single operators build it.
    :param images: how many images it asks for (``n``, 1 when not set).
    :param fingerprint: a digest of the request, so a retried try reuses a request only for the same item.
    """

    index: int
    key: str
    prompt: str
    request: SubmitRequest = field(repr=False)
    images: int
    fingerprint: str


def load_prompts(prompts: Any, prompts_uri: Any, prompts_conn_id: Any) -> list[Any]:
    """
    The raw items: ``prompts`` as given, or the records of the ``prompts_uri`` file. Exactly one of the two.

    A list rendered by a template (``"{{ ti.xcom_pull(...) }}"`` gives its text) is read back as JSON
    or as a Python literal.

    :raises PixazoValidationError: both or neither given, a value that is no list, an unreadable file.
    """
    given = [name for name, value in (("prompts", prompts), ("prompts_uri", prompts_uri)) if not _empty(value)]
    if len(given) != 1:
        shown = {"prompts": _short(prompts), "prompts_uri": prompts_uri}
        raise PixazoValidationError(
            "prompts/prompts_uri",
            shown,
            "exactly one of the two: a list of prompts, or the URI of a JSONL or CSV file of them"
            + ("; both were given" if given else "; neither was given"),
        )
    if given == ["prompts_uri"]:
        return _read_prompts_file(prompts_uri, prompts_conn_id)
    if isinstance(prompts, str):
        prompts = _list_from_text(prompts)
    if not isinstance(prompts, list | tuple):
        raise PixazoValidationError("prompts", _short(prompts), "a list of prompt strings or of dicts with 'prompt'")
    if not prompts:
        raise PixazoValidationError("prompts", [], "at least one prompt")
    return list(prompts)


def parse_prompts_file(text: str, name: str) -> list[Any]:
    """
    The records of a prompts file: JSONL (``.jsonl``, ``.ndjson``, ``.json``) or CSV (``.csv``), by its name.

    JSONL: one JSON object (or string) per line; blank lines are skipped; a malformed line is named by
    its number. CSV: a header row naming ``prompt`` and optionally ``key`` and image options; empty
    cells are "not set".

    :raises PixazoValidationError: naming ``prompts_uri``.
    """
    suffix = name.lower().rsplit(".", 1)[-1] if "." in name.rsplit("/", 1)[-1] else ""
    if suffix in ("jsonl", "ndjson", "json"):
        records: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as err:
                raise PixazoValidationError(
                    "prompts_uri", name, f"one JSON object per line; line {number} is not JSON ({err})"
                ) from None
        if not records:
            raise PixazoValidationError("prompts_uri", name, "a file with at least one prompt; this one has none")
        return records
    if suffix == "csv":
        reader = csv.DictReader(io.StringIO(text))
        columns = reader.fieldnames or []
        if "prompt" not in columns:
            raise PixazoValidationError(
                "prompts_uri", name, f"a CSV file whose header row names a 'prompt' column; it has {columns}"
            )
        rows = [{k: v for k, v in row.items() if v not in (None, "")} for row in reader]
        if not rows:
            raise PixazoValidationError("prompts_uri", name, "a file with at least one prompt; this one has none")
        return rows
    raise PixazoValidationError("prompts_uri", name, "a .jsonl (or .ndjson) or .csv file")


def build_items(
    raw: Sequence[Any],
    *,
    model: Any,
    defaults: Mapping[str, Any],
    extra_params: Mapping[str, Any] | None = None,
    log: Any = None,
) -> list[BatchItem]:
    """
    Validate every raw item into a :class:`BatchItem`; nothing is sent.

    :param defaults: the operator's image options, for every item that does not override them.
    :raises PixazoValidationError: for an invalid operator-level ``model``, option or ``extra_params``
        (named as the operator's parameter, once, not once per item); for the first invalid item (every
        invalid one is logged first), naming it as ``prompts[<index>]`` (and its key), the parameter, the
        value and what is allowed; also for duplicate keys.
    """
    # The operator's own arguments first: a bad default is one error, not a thousand.
    build_generate_request("operator defaults", model=model, extra_params=extra_params, **_given(defaults))
    items: list[BatchItem] = []
    errors: list[PixazoValidationError] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(raw):
        try:
            item = _build_item(index, record, model, defaults, extra_params)
        except PixazoValidationError as err:
            errors.append(err)
            continue
        first = seen.setdefault(item.key, index)
        if first != index:
            errors.append(
                PixazoValidationError(
                    f"prompts[{index}].key", item.key, f"a key no other item has; prompts[{first}] has it too"
                )
            )
            continue
        items.append(item)
    if errors:
        if log is not None:
            for listed in errors[:_LISTED_ERRORS]:
                log.error("Invalid batch item: %s", listed)
        first_error = errors[0]
        if len(errors) > 1:
            first_error = PixazoValidationError(
                first_error.parameter,
                first_error.value,
                f"{first_error.allowed} (and {len(errors) - 1} more invalid item(s), listed in the log; "
                "nothing was submitted)",
            )
        raise first_error
    return items


def check_spend(items: Sequence[BatchItem], max_images: Any) -> int:
    """
    The number of images the batch asks for, if it is at most ``max_images``.

    :raises PixazoValidationError: naming ``max_images``, the batch's count and the cap.
    """
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise PixazoValidationError("max_images", max_images, "a whole number of at least 1 (the spend guard)")
    total = sum(item.images for item in items)
    if total > max_images:
        raise PixazoValidationError(
            "max_images",
            max_images,
            f"at least the number of images the batch asks for: {len(items)} prompt(s) ask for {total} image(s), "
            f"more than max_images={max_images}; raise max_images or split the batch (nothing was submitted)",
        )
    return total


# -- one item --------------------------------------------------------------------------------------


def _build_item(
    index: int,
    record: Any,
    model: Any,
    defaults: Mapping[str, Any],
    extra_params: Mapping[str, Any] | None,
) -> BatchItem:
    where = f"prompts[{index}]"
    if isinstance(record, str):
        fields: dict[str, Any] = {"prompt": record}
    elif isinstance(record, Mapping):
        fields = dict(record)
    else:
        raise PixazoValidationError(where, _short(record), "a prompt string, or a dict with 'prompt'")
    key = fields.pop("key", None)
    if key is None:
        key = str(index)
    elif isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise PixazoValidationError(f"{where}.key", key, _KEY_RULE)
    named = f"{where} (key {key!r})" if "key" in _keys_of(record) else where
    unknown = sorted(set(fields) - set(ITEM_FIELDS))
    if unknown:
        raise PixazoValidationError(
            f"{named}.{unknown[0]}",
            fields[unknown[0]],
            f"an item sets only {', '.join(ITEM_FIELDS)}; {', '.join(unknown)} is not one of them",
        )
    prompt = fields.pop("prompt", None)
    options = {name: defaults.get(name) for name in IMAGE_OPTIONS}
    options.update({name: _coerce(name, value) for name, value in fields.items()})
    try:
        request = build_generate_request(prompt, model=model, extra_params=extra_params, **options)
    except PixazoValidationError as err:
        raise PixazoValidationError(f"{named}.{err.parameter}", err.value, err.allowed) from None
    canonical = json.dumps([request.path, request.body, request.headers], sort_keys=True, default=str)
    return BatchItem(
        index=index,
        key=key,
        prompt=prompt,
        request=request,
        images=int(options.get("n") or 1),
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest()[:16],
    )


def _given(options: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _coerce(name, value) for name, value in options.items() if name in IMAGE_OPTIONS}


def _keys_of(record: Any) -> Sequence[str]:
    return list(record) if isinstance(record, Mapping) else []


def _coerce(name: str, value: Any) -> Any:
    # CSV cells and rendered templates are text: a digit string for an integer option is that integer,
    # as for the single operators' templated options.
    if _rule(name).integers is not None and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


# -- reading ---------------------------------------------------------------------------------------


def _read_prompts_file(uri: Any, conn_id: Any) -> list[Any]:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_pixazo.storage import attach_local_filesystem, require_storage_connection

    if not isinstance(uri, str) and not isinstance(uri, ObjectStoragePath):
        raise PixazoValidationError("prompts_uri", uri, "the URI of a JSONL or CSV file (file://, s3://, ...)")
    conn_id = require_storage_connection("prompts_conn_id", conn_id)
    attach_local_filesystem()  # a local file is read without Airflow importing every provider's file system
    text_uri = str(uri).strip()
    try:
        path = uri if isinstance(uri, ObjectStoragePath) else ObjectStoragePath(text_uri, conn_id=conn_id)
        size = path.stat().st_size
        if size > MAX_PROMPTS_FILE_BYTES:
            raise PixazoValidationError("prompts_uri", text_uri, f"a file of at most {MAX_PROMPTS_FILE_BYTES} bytes")
        data = path.read_bytes()
    except PixazoValidationError:
        raise
    except Exception as err:  # each file system raises its own errors: FileNotFoundError, botocore's...
        raise PixazoValidationError("prompts_uri", text_uri, f"a readable file ({type(err).__name__}: {err})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PixazoValidationError("prompts_uri", text_uri, f"a UTF-8 text file ({err})") from None
    return parse_prompts_file(text, text_uri)


def _list_from_text(text: str) -> Any:
    # Without render_template_as_native_obj, "{{ ti.xcom_pull(...) }}" renders a list as its repr.
    stripped = text.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
    raise PixazoValidationError(
        "prompts", _short(text), "a list of prompts (a string is read only if it holds a JSON or Python list)"
    )


def _empty(value: Any) -> bool:
    # What a template renders for "no value": None, "" or "None".
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 120:
        return value[:100] + f"… ({len(value)} chars)"
    if isinstance(value, list | tuple) and len(value) > 5:
        return f"<a list of {len(value)} items>"
    return value
