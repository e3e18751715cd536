"""The feature cache: pooling maths, the Zarr v3 store, its reader and torch Dataset.

    from musilingo.cache import FeatureCache, CacheDataset

The reader is imported lazily (`musilingo.features` imports `cache.pooling`, and should not pay
for zarr).
"""


def __getattr__(name):
    if name in ("FeatureCache", "CacheDataset", "segment_tokens"):
        from . import reader

        return getattr(reader, name)
    raise AttributeError(name)


__all__ = ["FeatureCache", "CacheDataset", "segment_tokens"]
