"""StagedFile: whole or nothing, hashed in a writer thread, one fsync per local file, bounded memory."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_pixazo.exceptions import PixazoDestinationConflictError
from airflow_provider_pixazo.transfers import _staging
from airflow_provider_pixazo.transfers._staging import BATCH_BYTES, WRITEBACK_WINDOW, StagedFile

LOG = logging.getLogger(__name__)
PIECE = 64 * 1024  # what httpcore reads from a socket at a time


def pieces(total: int, seed: bytes = b"pixazo") -> list[bytes]:
    data = (hashlib.sha256(seed).digest() * (total // 32 + 1))[:total]
    return [data[i : i + PIECE] for i in range(0, total, PIECE)]


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("pixazo-write", "pixazo-hash")]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(_staging.os, "fsync", spy)
    return calls


def test_large_file_is_written_hashed_and_published_once(tmp_path: Path, fsyncs: list[int]) -> None:
    chunks = pieces(3 * WRITEBACK_WINDOW + 12345)
    data = b"".join(chunks)
    target = ObjectStoragePath(f"file://{tmp_path}/out/0.png")
    staged = StagedFile(target, "image/png")
    for chunk in chunks:
        staged.write(chunk)
    assert {t.name for t in writer_threads()} == {"pixazo-write", "pixazo-hash"}, "a large file has its own threads"
    assert not (tmp_path / "out" / "0.png").exists()  # nothing under the final name before commit

    assert staged.commit(overwrite=False, log=LOG) == "written"
    staged.discard()

    assert (tmp_path / "out" / "0.png").read_bytes() == data
    assert staged.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert staged.size == len(data)
    assert len(fsyncs) == 1
    assert os.listdir(tmp_path / "out") == ["0.png"]  # no .part left
    assert not writer_threads()


def test_small_file_starts_no_thread(tmp_path: Path, fsyncs: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    monkeypatch.setattr(_staging.threading.Thread, "start", lambda self: started.append(self))
    staged = StagedFile(ObjectStoragePath(f"file://{tmp_path}/p.json"), "application/json")
    staged.write(b'{"a": 1}\n')
    assert staged.commit(overwrite=True, log=LOG) == "written"
    staged.discard()
    assert started == []
    assert (tmp_path / "p.json").read_bytes() == b'{"a": 1}\n'
    assert len(fsyncs) == 1


def test_memory_held_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """However fast the producer, at most a few batches wait for the disk."""
    release = threading.Event()
    real_write = _staging._write_all

    def slow_write(fd: int, data: Any) -> None:
        release.wait(timeout=10)
        real_write(fd, data)

    monkeypatch.setattr(_staging, "_write_all", slow_write)
    staged = StagedFile(ObjectStoragePath(f"file://{tmp_path}/0.png"), "image/png")
    chunks = pieces(40 * BATCH_BYTES)
    done = threading.Event()

    def produce() -> None:
        for chunk in chunks:
            staged.write(chunk)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    # The writer is stuck on its first batch: the producer must block, not buffer the whole file.
    assert not done.wait(timeout=0.5)
    queues = [source for source, _ in staged._workers]
    assert len(queues) == 2
    # The write queue is full, the hash queue drained; a batch sits in the writer, one in the producer.
    held = max(source.qsize() for source in queues) + 1 + 1
    assert held * BATCH_BYTES + staged._batch_bytes <= 5 * BATCH_BYTES
    release.set()
    producer.join(timeout=30)
    assert done.is_set()
    assert staged.commit(overwrite=False, log=LOG) == "written"
    staged.discard()
    assert (tmp_path / "0.png").stat().st_size == 40 * BATCH_BYTES


def test_a_disk_error_in_the_writer_reaches_the_caller_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_staging, "_write_all", full)
    staged = StagedFile(ObjectStoragePath(f"file://{tmp_path}/0.png"), "image/png")

    def write_all_then_commit() -> None:
        for chunk in pieces(8 * BATCH_BYTES):
            staged.write(chunk)
        staged.commit(overwrite=False, log=LOG)

    with pytest.raises(OSError, match="No space left"):
        write_all_then_commit()
    staged.discard()
    assert os.listdir(tmp_path) == []
    assert not writer_threads()


def test_discard_midway_stops_the_writer_and_removes_the_part_file(tmp_path: Path) -> None:
    staged = StagedFile(ObjectStoragePath(f"file://{tmp_path}/0.png"), "image/png")
    for chunk in pieces(5 * BATCH_BYTES):
        staged.write(chunk)
    staged.discard()
    assert os.listdir(tmp_path) == []
    assert not writer_threads()


def test_local_file_asks_for_early_writeback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    advised: list[tuple[int, int]] = []
    monkeypatch.setattr(_staging, "_start_writeback", lambda fd, offset, length: advised.append((offset, length)))
    staged = StagedFile(ObjectStoragePath(f"file://{tmp_path}/0.png"), "image/png")
    for chunk in pieces(2 * WRITEBACK_WINDOW + BATCH_BYTES):
        staged.write(chunk)
    staged.commit(overwrite=False, log=LOG)
    staged.discard()
    assert advised == [(0, WRITEBACK_WINDOW), (WRITEBACK_WINDOW, WRITEBACK_WINDOW)]


def test_remote_staging_is_not_fsynced(fsyncs: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """A temp file bound for an object store is made durable by the upload, not by fsync."""
    target = ObjectStoragePath("s3://bucket/x/0.png")
    staged = StagedFile(target, "image/png")
    try:
        staged.write(pieces(2 * BATCH_BYTES)[0])
        staged.finish()
        assert fsyncs == []
        assert os.path.dirname(staged.name) == tempfile.gettempdir()
    finally:
        staged.discard()
    assert not os.path.exists(staged.name)


def test_identical_target_is_left_alone_and_a_different_one_needs_overwrite(tmp_path: Path) -> None:
    chunks = pieces(3 * BATCH_BYTES)
    target_path = tmp_path / "0.png"
    target_path.write_bytes(b"".join(chunks))
    before = target_path.stat().st_ino
    staged = StagedFile(ObjectStoragePath(f"file://{target_path}"), "image/png")
    for chunk in chunks:
        staged.write(chunk)
    assert staged.commit(overwrite=False, log=LOG) == "unchanged"
    staged.discard()
    assert target_path.stat().st_ino == before

    staged = StagedFile(ObjectStoragePath(f"file://{target_path}"), "image/png")
    staged.write(b"other bytes")
    with pytest.raises(PixazoDestinationConflictError):
        staged.commit(overwrite=False, log=LOG)
    staged.discard()
    assert os.listdir(tmp_path) == ["0.png"]


def test_a_short_writev_is_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_writev = os.writev

    def short(fd: int, buffers: Any) -> int:
        return real_writev(fd, [bytes(buffers[0])[:100]])  # the kernel may write less than asked

    monkeypatch.setattr(_staging.os, "writev", short)
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        _staging._write_all(fd, [b"a" * 300, memoryview(b"b" * 50), b"c" * 7])
    finally:
        os.close(fd)
    assert path.read_bytes() == b"a" * 300 + b"b" * 50 + b"c" * 7
