"""The feature layer: what a clip's encoder output becomes before the adapter sees it.

    from musilingo.features import PooledSegment, join_segments
    from musilingo.features.pooling import window_pool, repool, layer_mean
    from musilingo.features.sources import EncoderSource, CacheSource, FeatureSource

`pooling.py` is the maths that lets a cache replace the encoder exactly (window means at a base
stride, count-weighted re-pooling, the paper's layer mean; the stride-divides-t rule they rest on
is `vocabulary.window_factor`, with the other values every verb shares);
`segments.py` is the unit the cache stores and online training computes (`PooledSegment`), how a
clip is cut into segments, and the one rule by which training and inference join a long clip's
segments into audio tokens; `sources.py` is the one protocol every consumer reads a clip's
segments through (a cache, or the encoder on audio). Both the cache (storage) and the models
(the adapter) import this layer; it imports neither.
"""
from .segments import PooledSegment, encode_pooled, join_segments, pool_hidden, segment_plan

__all__ = ["PooledSegment", "encode_pooled", "join_segments", "pool_hidden", "segment_plan"]
