"""A published MusiLingo model folder in the hub layout (m-a-p/MusiLingo-*-v1), for tests."""
from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

REMOTE_CODE = '''import pathlib
pathlib.Path(__file__).with_name("REMOTE_CODE_RAN").write_text("yes")
'''


def published_folder(root, *, config=None, adapter_prefix="model.", extra_adapter=False,
                     llm_dim=64, enc_dim=128, mert_model="m-a-p/MERT-v1-330M"):
    """A sharded model folder as the hub holds MusiLingo: config.json with auto_map, remote code,
    model.safetensors.index.json and three shards; the adapter sits in the middle shard under a
    key prefix, and the last shard is not even a valid file (it must never be opened)."""
    root.mkdir()
    torch.manual_seed(0)
    weight, bias = torch.randn(llm_dim, enc_dim), torch.randn(llm_dim)
    shards = {
        "model-00001-of-00003.safetensors": {
            "model.audio_encoder.feature_projection.projection.weight": torch.randn(8, 4)},
        "model-00002-of-00003.safetensors": {
            "model.llama_model.model.embed_tokens.weight": torch.randn(10, 4),
            adapter_prefix + "llama_proj.weight": weight.half(),
            adapter_prefix + "llama_proj.bias": bias.half()},
    }
    if extra_adapter:
        shards["model-00001-of-00003.safetensors"]["other.llama_proj.weight"] = torch.zeros(2, 2)
    weight_map = {k: name for name, tensors in shards.items() for k in tensors}
    for name, tensors in shards.items():
        save_file(tensors, str(root / name), metadata={"format": "pt"})
    (root / "model-00003-of-00003.safetensors").write_bytes(b"not a safetensors file")
    weight_map["model.llama_model.lm_head.weight"] = "model-00003-of-00003.safetensors"
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 15_000_000_000}, "weight_map": weight_map}))
    (root / "config.json").write_text(json.dumps(config or {
        "architectures": ["MusiLingo"], "model_type": "musilingo",
        "auto_map": {"AutoConfig": "configuration_musilingo.MusiLingoConfig",
                     "AutoModel": "modeling_musilingo.MusiLingo"},
        "mert_model": mert_model, "llama_model": "lmsys/vicuna-7b-delta-v0",
        "prompt_template": "###Human: {} ###Assistant: ", "max_txt_len": 160, "end_sym": "###"}))
    (root / "modeling_musilingo.py").write_text(REMOTE_CODE)
    (root / "configuration_musilingo.py").write_text(REMOTE_CODE)
    return root, weight.half().float(), bias.half().float()
