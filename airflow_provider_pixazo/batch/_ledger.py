"""
The batch's ledger: each item's submit intent, request id and outcome, kept in Airflow's task state store.

So a retried try (after a crash, a kill, or a partial failure) pays once per prompt: an item is marked
``intent`` *before* its submit is sent and gets its request id right after; the next try reuses every
request id it finds, resubmits only what ended FAILED or ERROR (or was refused without being taken), and
reports an item with an intent but no id as ``uncertain`` rather than pay for it again.

Layout (Airflow >= 3.3): every write is one call from the worker to the API server, so entries are kept
:data:`CHUNK_SIZE` items to a key (``pixazo_batch.<n>``, about 22 KB each, under the store's 64 KB
``max_value_storage_bytes``) and a write sends only the chunks that changed: a 1 000-item batch is five
keys, and one flush of the submit loop usually rewrites one of them (75-80 writes for 1 000 items with
``max_in_flight=8``). ``pixazo_batch`` holds the number
of chunks. An entry is ``{"k": key, "f": fingerprint, "s": state, "id": request_id, "e": error}``.

On Airflow 3.2 (no task state store) the ledger lives in memory for the try only: a retried try submits
every item again (and pays again), which :meth:`Ledger.open` logs as a warning.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow_provider_pixazo.batch._items import BatchItem

__all__ = ["CHUNK_SIZE", "HEADER_KEY", "Entry", "EntryState", "Ledger", "StateStore"]

#: The task state store key of the header; the chunks are ``<HEADER_KEY>.<n>``. Renaming it would orphan
#: the requests of tries already in flight.
HEADER_KEY = "pixazo_batch"
#: Items per task state store key: about 22 KB typically, under 64 KB even with every error at its cap.
CHUNK_SIZE = 200
# Characters of an entry's error kept (the task log has it whole).
_MAX_ERROR = 200
_VERSION = 1


class StateStore(Protocol):
    """What the ledger uses of Airflow's ``TaskStateStoreAccessor``."""

    def get(self, key: str, default: Any = None) -> Any:
        """The stored JSON value, or ``default``."""
        ...

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value (one call to the API server)."""
        ...


class EntryState(enum.StrEnum):
    """Where an item is in its life, as the ledger knows it."""

    #: Its submit is about to be sent, or was sent and its answer never recorded.
    INTENT = "intent"
    #: Pixazo accepted it; ``id`` is its request id.
    SUBMITTED = "submitted"
    #: The submit was refused without being taken (a 4xx, or a connection never made): nothing paid.
    REFUSED = "refused"
    #: Its request ended so (recorded after the wait).
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ERROR = "ERROR"


#: Terminal states whose item a later try submits again.
RESUBMIT = frozenset({EntryState.REFUSED, EntryState.FAILED, EntryState.ERROR})


@dataclass
class Entry:
    """One item's record."""

    key: str
    fingerprint: str
    state: EntryState
    request_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form (short names: a thousand of them are sent on every chunk write)."""
        data: dict[str, Any] = {"k": self.key, "f": self.fingerprint, "s": self.state.value}
        if self.request_id is not None:
            data["id"] = self.request_id
        if self.error is not None:
            data["e"] = self.error[:_MAX_ERROR]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Entry | None:
        """The entry, or None for anything this version cannot read (treated as never submitted)."""
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(
                key=str(data["k"]),
                fingerprint=str(data["f"]),
                state=EntryState(data["s"]),
                request_id=data.get("id") if isinstance(data.get("id"), str) else None,
                error=data.get("e") if isinstance(data.get("e"), str) else None,
            )
        except (KeyError, ValueError):
            return None


class Ledger:
    """
    The entries of one batch, by item index; :meth:`flush` writes the chunks that changed.

    :param store: the task state store, or None (Airflow 3.2: memory only).
    :param items: the batch's items, in order.
    :param previous: what earlier tries recorded, by item key.
    """

    def __init__(self, store: StateStore | None, items: Sequence[BatchItem], previous: Mapping[str, Entry]) -> None:
        self.store = store
        self._items = list(items)
        self._entries: dict[int, Entry] = {}
        self._dirty: set[int] = set()
        self.writes = 0  # calls made to the store's set(), for the log and the tests
        self.write_seconds = 0.0  # time spent in them (each is a round trip to the API server)
        for item in self._items:
            entry = previous.get(item.key)
            if entry is not None and entry.fingerprint == item.fingerprint:
                self._entries[item.index] = entry

    @classmethod
    def open(cls, context: Mapping[str, Any], items: Sequence[BatchItem], log: Any) -> Ledger:
        """Read what earlier tries recorded (nothing on a first try, or on Airflow 3.2)."""
        store = context.get("task_state_store")
        if store is None:
            log.warning(
                "No task state store (Airflow < 3.3): request ids are kept for this try only, so a retried try "
                "submits (and pays for) every item again"
            )
            return cls(None, items, {})
        previous: dict[str, Entry] = {}
        header = store.get(HEADER_KEY)
        chunks = header.get("chunks") if isinstance(header, Mapping) and header.get("v") == _VERSION else None
        if isinstance(chunks, int):
            for number in range(chunks):
                stored = store.get(f"{HEADER_KEY}.{number}")
                for data in stored if isinstance(stored, list) else ():
                    entry = Entry.from_json(data)
                    if entry is not None:
                        previous[entry.key] = entry
        ledger = cls(store, items, previous)
        # Written once per try before any submit: how many chunk keys the next try reads.
        wanted = {"v": _VERSION, "chunks": max(ledger.chunk_count, chunks if isinstance(chunks, int) else 0)}
        if header != wanted:
            store.set(HEADER_KEY, wanted)
            ledger.writes += 1
        return ledger

    @property
    def chunk_count(self) -> int:
        """How many chunk keys this batch uses."""
        return (len(self._items) + CHUNK_SIZE - 1) // CHUNK_SIZE

    @property
    def durable(self) -> bool:
        """Whether entries outlive the try (a task state store is there)."""
        return self.store is not None

    def get(self, index: int) -> Entry | None:
        """The entry of item ``index``, if any try recorded one for the same request."""
        return self._entries.get(index)

    def mark(
        self, item: BatchItem, state: EntryState, *, request_id: str | None = None, error: str | None = None
    ) -> None:
        """Record ``state`` for ``item`` in memory; :meth:`flush` makes it durable."""
        previous = self._entries.get(item.index)
        if request_id is None and previous is not None and state not in (EntryState.INTENT, EntryState.REFUSED):
            request_id = previous.request_id
        self._entries[item.index] = Entry(item.key, item.fingerprint, state, request_id, error)
        self._dirty.add(item.index // CHUNK_SIZE)

    def mark_many(self, marks: Iterable[tuple[BatchItem, EntryState, str | None, str | None]]) -> None:
        """:meth:`mark` for each ``(item, state, request_id, error)``."""
        for item, state, request_id, error in marks:
            self.mark(item, state, request_id=request_id, error=error)

    def flush(self) -> int:
        """Write every chunk that changed since the last flush (nothing on Airflow 3.2); return how many."""
        return self.write(self.take_dirty())

    def take_dirty(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """
        The chunks that changed, as ``(key, value)`` snapshots to :meth:`write`; empty on Airflow 3.2.

        Taken on the thread that marks entries, so :meth:`write` can run on another one while marking goes on.
        """
        dirty, self._dirty = sorted(self._dirty), set()
        if self.store is None:
            return []
        snapshots = []
        for number in dirty:
            items = self._items[number * CHUNK_SIZE : (number + 1) * CHUNK_SIZE]
            value = [self._entries[item.index].to_json() for item in items if item.index in self._entries]
            snapshots.append((f"{HEADER_KEY}.{number}", value))
        return snapshots

    def write(self, snapshots: Sequence[tuple[str, list[dict[str, Any]]]]) -> int:
        """Store the snapshots :meth:`take_dirty` made (one call to the API server each); return how many."""
        if self.store is None or not snapshots:
            return 0
        started = time.monotonic()
        for key, value in snapshots:
            self.store.set(key, value)
            self.writes += 1
        self.write_seconds += time.monotonic() - started
        return len(snapshots)
