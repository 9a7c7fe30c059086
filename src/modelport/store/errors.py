"""What store calls raise."""


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class StoreBusy(StoreError):
    """Another control plane already works on this store."""


class Stale(StoreError):
    """The row changed since the caller read it (a conditional update did nothing)."""
