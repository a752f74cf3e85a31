"""A blocking facade over :class:`AsyncFhirClient`, for the CLI and scripts.

It runs the async client on an event loop in a background thread (an anyio blocking portal), so
it works the same whether or not the calling thread already runs a loop, and keeps one connection
pool for its lifetime. It adds no behaviour of its own: every rule lives in the async client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._bundles import BundleEntry
from ._capabilities import Capabilities
from ._client import AsyncFhirClient, Resource
from ._results import BundleResult, WriteResult
from ._search import HistorySet, Page, SearchSet

__all__ = ["FhirClient", "SyncSearchSet"]

T = TypeVar("T")
R = TypeVar("R")


def _iterate(portal: BlockingPortal, source: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from this thread, one item per round trip; close it if abandoned."""

    async def step() -> tuple[bool, Any]:
        try:
            return True, await anext(source)
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            more, item = portal.call(step)
            if not more:
                return
            yield item
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            portal.call(aclose)


class SyncSearchSet(Generic[R]):
    """The blocking twin of :class:`SearchSet`: same builder methods, plain iteration."""

    def __init__(self, portal: BlockingPortal, inner: SearchSet[R] | HistorySet) -> None:
        self._portal = portal
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        """Builder methods (``count``, ``include``, ``validated`` …) wrap the new inner set."""
        method = getattr(self._inner, name)
        if not callable(method):
            return method

        def build(*args: Any, **kwargs: Any) -> SyncSearchSet[Any]:
            return SyncSearchSet(self._portal, method(*args, **kwargs))

        return build

    def __iter__(self) -> Iterator[R]:
        return _iterate(self._portal, aiter(self._inner))  # type: ignore[arg-type]

    def pages(self) -> Iterator[Page[R]]:
        return _iterate(self._portal, self._inner.pages())  # type: ignore[arg-type]

    def first(self) -> R | None:
        return self._portal.call(self._inner.first)  # type: ignore[union-attr]

    def get(self) -> R:
        return self._portal.call(self._inner.get)  # type: ignore[union-attr]

    def fetch_all(self) -> list[R]:
        return list(self)


class FhirClient:
    """Blocking FHIR client; takes the same arguments as :class:`AsyncFhirClient`."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        try:
            self._client = AsyncFhirClient(base_url, **kwargs)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)  # its thread would keep the process alive
            raise

    def _call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self._portal.call(lambda: func(*args, **kwargs))

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def close(self) -> None:
        try:
            self._call(self._client.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def capabilities(self, *, refresh: bool = False) -> Capabilities:
        return self._call(self._client.capabilities, refresh=refresh)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self._call(self._client.read, resource_type, resource_id)

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        return self._call(self._client.vread, resource_type, resource_id, version_id)

    def search(self, resource_type: str, **params: Any) -> SyncSearchSet[dict[str, Any]]:
        return SyncSearchSet(self._portal, self._client.search(resource_type, **params))

    def history(
        self, resource_type: str | None = None, resource_id: str | None = None, **kwargs: Any
    ) -> SyncSearchSet[dict[str, Any]]:
        return SyncSearchSet(self._portal, self._client.history(resource_type, resource_id, **kwargs))

    def create(self, resource: Resource, **kwargs: Any) -> WriteResult:
        return self._call(self._client.create, resource, **kwargs)

    def update(self, resource: Resource, **kwargs: Any) -> WriteResult:
        return self._call(self._client.update, resource, **kwargs)

    def conditional_update(self, resource: Resource, criteria: str | Mapping[str, Any]) -> WriteResult:
        return self._call(self._client.conditional_update, resource, criteria)

    def patch(
        self, resource_type: str, resource_id: str, operations: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> WriteResult:
        return self._call(self._client.patch, resource_type, resource_id, operations, **kwargs)

    def delete(self, resource_type: str, resource_id: str) -> WriteResult:
        return self._call(self._client.delete, resource_type, resource_id)

    def transaction(self, entries: Sequence[BundleEntry | Mapping[str, Any]], **kwargs: Any) -> BundleResult:
        return self._call(self._client.transaction, entries, **kwargs)

    def batch(self, entries: Sequence[BundleEntry | Mapping[str, Any]], **kwargs: Any) -> BundleResult:
        return self._call(self._client.batch, entries, **kwargs)
