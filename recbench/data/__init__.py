"""The data layer: finding raw files, preparing them once into a canonical cached form, and the
fixed leave-one-out split every generator is trained and judged on."""

from .prepare import Prepared, RawData, prepare
from .source import Source


def __getattr__(name: str):
    """Batch and Split hold torch tensors: imported on first use, so that a dataset plugin's registration imports no torch."""
    if name in ("Batch", "Split"):
        from . import split

        return getattr(split, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Batch", "Prepared", "RawData", "Source", "Split", "prepare"]
