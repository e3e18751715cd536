"""MERT-v1 checkpoints loaded natively: their config mapped onto transformers' HuBERT, no remote code.

    model = load_mert("m-a-p/MERT-v1-330M", read_config("m-a-p/MERT-v1-330M"))   # or a folder

A MERT-v1 hub folder (`model_type: mert_model`, `architectures: [MERTModel]`) carries its own
modelling code, `modeling_MERT.py`, which subclasses transformers' HuBERT classes and changes only
three things (docs/REFERENCE.md, "MERT-v1 checkpoints"):
- an optional CQT branch concatenated to the conv features (`feature_extractor_cqt`),
- an optional DeepNorm post-LN encoder with "relaxed" attention (`deepnorm`, `attention_relax`),
- its own feature projection, which is HuBERT's with `feat_proj_layer_norm`.
MERT-v1-95M and -330M use neither of the first two, so a HuBERT config with the checkpoint's sizes
and norms computes exactly MERT's forward. This module builds that config, refuses (naming the
field) any setting the native path cannot honour, and loads the weights with `from_pretrained`,
strictly: a missing, unexpected or mis-shaped key is an error naming the key.

Why not run the remote code: under transformers 5 its `forward` returns `hidden_states=None`, and
it would execute code from the checkpoint folder. The hidden states themselves are collected by
`FrozenEncoder` (module hooks), with the 4.x semantics MusiLingo was trained on.
"""
from __future__ import annotations

import torch

from ...errors import UserError

MERT_MODEL_TYPE = "mert_model"

# Fields that decide the forward pass, copied onto HubertConfig as they are.
FORWARD_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "layer_norm_eps", "feat_extract_norm", "feat_extract_activation", "conv_dim", "conv_stride",
    "conv_kernel", "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
    "do_stable_layer_norm", "feat_proj_layer_norm",
    # Inert in eval mode, but they decide whether `masked_spec_embed` exists (a checkpoint key).
    "mask_time_prob", "mask_feature_prob",
)
# Fields that change nothing in a frozen, eval-mode forward: training-time regularisation,
# heads MERTModel does not have, and bookkeeping.
INERT_FIELDS = frozenset((
    "activation_dropout", "attention_dropout", "hidden_dropout", "hidden_dropout_prob",
    "feat_extract_dropout", "feat_proj_dropout", "final_dropout", "layerdrop",
    "apply_spec_augment", "mask_time_length", "mask_time_min_masks", "mask_time_min_space",
    "mask_time_other", "mask_time_selection", "mask_feature_length", "mask_feature_min_masks",
    "mask_channel_length", "mask_channel_min_space", "mask_channel_other", "mask_channel_prob",
    "mask_channel_selection", "ctc_loss_reduction", "ctc_zero_infinity", "vocab_size",
    "classifier_proj_size", "use_weighted_layer_sum", "initializer_range", "gradient_checkpointing",
    "pad_token_id", "bos_token_id", "eos_token_id", "tokenizer_class", "torch_dtype", "dtype",
    "num_feat_extract_layers", "sample_rate", "auto_map", "architectures", "model_type",
    "_name_or_path", "transformers_version", "output_hidden_states", "output_attentions",
    "return_dict", "id2label", "label2id", "problem_type", "chunk_size_feed_forward",
    "is_encoder_decoder", "use_cache", "_attn_implementation_autoset",
    # Only read by the CQT branch / the DeepNorm layers, which `unsupported` refuses.
    "feature_extractor_cqt_bins", "attention_relax",
))
# Switches whose True value needs MERT's own code.
REMOTE_ONLY = {"feature_extractor_cqt": "the CQT input branch",
               "deepnorm": "the DeepNorm encoder with relaxed attention"}
NORMS = ("group", "layer")


def read_config(source: str) -> dict:
    """config.json of a folder or hub id as a plain dict (reading it runs no code)."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(source)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the config of encoder {source!r} (not a local model folder, "
                        f"and the hub is unreachable or has no such model): "
                        f"{str(exc).splitlines()[0]}") from None
    return config


def is_mert(config: dict) -> bool:
    return config.get("model_type") == MERT_MODEL_TYPE or \
        "MERTModel" in (config.get("architectures") or [])


def unsupported(config: dict) -> str | None:
    """Why the native path cannot compute this checkpoint's forward (None when it can)."""
    for key, what in REMOTE_ONLY.items():
        if config.get(key):
            return f"config field {key}: {config[key]!r} ({what})"
    if config.get("feat_extract_norm", "group") not in NORMS:
        return f"config field feat_extract_norm: {config['feat_extract_norm']!r}"
    unknown = sorted(set(config) - set(FORWARD_FIELDS) - INERT_FIELDS - set(REMOTE_ONLY))
    if unknown:
        return f"config field {unknown[0]} (unknown to the native MERT loader)"
    return None


def hubert_config(config: dict):
    """The HubertConfig that computes this MERT-v1 checkpoint's forward."""
    from transformers import HubertConfig

    values = {k: config[k] for k in FORWARD_FIELDS if k in config}
    # A frozen feature extractor: no dropout anywhere (eval mode already turns it off).
    values.update(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                  feat_proj_dropout=0.0, final_dropout=0.0, layerdrop=0.0)
    return HubertConfig(**values)


def load_mert(source: str, config: dict, *, dtype: torch.dtype = torch.float32):
    """A transformers `HubertModel` holding the MERT-v1 checkpoint at `source`, every key used."""
    from transformers import HubertModel

    why = unsupported(config)
    if why:  # callers check first; this keeps the function safe on its own
        raise UserError(f"encoder {source}: {why} needs MERT's own code: pass --trust-remote-code")
    try:
        model, info = HubertModel.from_pretrained(source, config=hubert_config(config), dtype=dtype,
                                                  output_loading_info=True)
    except OSError as exc:
        raise UserError(f"cannot load the weights of encoder {source!r}: "
                        f"{str(exc).splitlines()[0]}") from None
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(map(str, info.get(kind) or ()))
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise UserError(f"encoder {source}: checkpoint key {keys[0]}{more} is "
                            f"{kind.split('_')[0]} for a MERT-v1 model of this config: the "
                            "weights do not match config.json")
    for msg in info.get("error_msgs") or ():
        raise UserError(f"encoder {source}: {str(msg).splitlines()[0]}")
    return model
