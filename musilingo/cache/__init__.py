"""The feature cache: the Zarr v3 store, its checked reader, info/verify/export.

    from musilingo.cache import FeatureCache

The pooling maths whose results it stores lives in the feature layer (`musilingo.features`), and
the one way training, inference and scoring read a cache is `features.sources.CacheSource`.
The reader is imported lazily, so that importing the package does not pay for zarr.
"""


def __getattr__(name):
    if name == "FeatureCache":
        from . import reader

        return reader.FeatureCache
    raise AttributeError(name)


__all__ = ["FeatureCache"]
