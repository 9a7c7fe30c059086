"""The model revisions the loop's parts look up on the event loop, by (endpoint id, generation).

Filled from the tick's store read (in its worker thread); read on the event loop without store
I/O. A revision is immutable, so an entry never goes stale; one removed from the store stays
until the control plane restarts, which is harmless (nothing asks for it any more)."""

from __future__ import annotations

from collections.abc import Mapping

from modelport.store.records import ModelRevision

RevisionKey = tuple[int, int]  # (endpoint id, generation)


class RevisionCache:
    def __init__(self) -> None:
        self._revisions: dict[RevisionKey, ModelRevision] = {}

    def keys(self) -> set[RevisionKey]:
        """The generations cached now (a copy: the store read runs in another thread)."""
        return set(self._revisions)

    def add(self, revisions: Mapping[RevisionKey, ModelRevision]) -> None:
        self._revisions.update(revisions)

    def get(self, endpoint_id: int, generation: int) -> ModelRevision | None:
        """A generation's model revision; None for one the store did not have when last read."""
        return self._revisions.get((endpoint_id, generation))
