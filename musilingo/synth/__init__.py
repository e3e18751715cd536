"""The demo's synthetic music: clips with known musical attributes, in the real data-set formats.

    from musilingo.synth import generate
    generate("demo_out/synth", n_train=320, n_test=40, seed=0)   # audio/, captions.csv, qa.json

Modules: render (the signal: timbres, tempo, register, key and mode), language (captions,
questions and the answer checker), generate (plans the clips, renders them in worker processes,
writes the folder). The folder is read back by `musilingo.data` like any downloaded data set.
"""
from musilingo.synth.generate import GENERATOR_VERSION, generate, plan_clips
from musilingo.synth.language import ATTRIBUTES, answer_is_correct, chance, mentioned_values

__all__ = ["ATTRIBUTES", "GENERATOR_VERSION", "answer_is_correct", "chance", "generate",
           "mentioned_values", "plan_clips"]
