"""The feature cache: the Zarr v3 store, its checked reader and torch Dataset, info/verify/export.

    from musilingo.cache import FeatureCache, CacheDataset

The pooling maths whose results it stores lives in the feature layer (`musilingo.features`).
The reader is imported lazily, so that importing the package does not pay for zarr.
"""


def __getattr__(name):
    if name in ("FeatureCache", "CacheDataset", "segment_tokens"):
        from . import reader

        return getattr(reader, name)
    raise AttributeError(name)


__all__ = ["FeatureCache", "CacheDataset", "segment_tokens"]
