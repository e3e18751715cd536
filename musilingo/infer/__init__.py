"""Inference: caption, ask and chat about audio.

    from musilingo.infer import Predictor, GenerationConfig, Item, generate_for_items
    p = Predictor.load("runs/instruct"); p.ask("song.wav", "What instrument is playing?")

Modules: config (the generating verbs' settings; no torch), generation (prompts, batched
generate), predictor (the API; features come from musilingo.features.sources), items (arbitrary
(clip, question) items, the shuffled-audio control), command (the click verbs). Scoring a run on
a test split is `musilingo.score`; run folders are `musilingo.runs`. Names are imported lazily
so that `import musilingo.infer` does not load torch.
"""
from __future__ import annotations

_EXPORTS = {
    "GenerationConfig": "config", "Generation": "generation", "generate": "generation",
    "Predictor": "predictor", "ChatSession": "predictor", "Item": "items",
    "generate_for_items": "items", "shuffled_audio": "items", "derangement": "items",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_EXPORTS)
