#!/usr/bin/env python3
"""Rein / mmseg checkpoints for ReinCheckpointTests (importing PyTorch-world checkpoints).

Re-run from the repository root (needs torch, h5py, numpy):

    python3 Tests/TrainingTests/Fixtures/rein/make_rein_fixtures.py

Writes into Tests/TrainingTests/Fixtures/rein/:

  rein_full.pth, rein_lora.pth   mmseg/mmengine checkpoints {'meta': …, 'state_dict': …} of a
                                 segmentor whose backbone holds Rein's PEFT module as `reins`
                                 (full tokens / LoRA tokens, rank 4) and a linear decode head —
                                 the frozen backbone's own weights are not saved, as Rein's
                                 backbone drops them from its state dict
  native_full.h5, native_lora.h5 the same values under our checkpoint names (written with h5py:
                                 format/version attributes and /params/<name> only)
  official_causal_tune.pth       the layout of the official Causal-Tune code (a second token
                                 set `learnable_tokens2` and MLPs `mlp_*2`): must be refused
  foreign.pth                    a backbone-only checkpoint ({'model': {'blocks.0…'}}): not a
                                 segmentation checkpoint

Sizes match the tests' config: dinov2_vitt14 (C 192, 12 blocks), 4 tokens, linear head on
blocks [2, 5, 8, 11], 19 classes. The PEFT module below is written from the semantics of
Rein's `reins.py` (Reins / LoRAReins: parameter names, shapes, initialisation — uniform
tokens with v = sqrt(6 / (3 P^2 + C)), or sqrt(C r) for LoRA; `scale` a 0-d parameter;
the token → query link `transform` / `merge` always present); values are then perturbed so
that every tensor matters (scale 0.5, non-zero biases).

`check_export.py` (same folder) is the other direction: it loads a file written by
`causal-tune export --format mmseg` with torch.load(weights_only=True) into Rein-structured
modules with strict=True.
"""
import math
import os
from collections import OrderedDict

import h5py
import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
C, L, M, PATCH, RANK, K = 192, 12, 4, 14, 4, 19
OUT_INDICES = [2, 5, 8, 11]


class ReinPEFT(nn.Module):
    """Rein's PEFT module: the parameter structure of `Reins` / `LoRAReins`."""

    def __init__(self, layers, channels, patch, tokens, lora=None, query_dims=256, scale=1e-3):
        super().__init__()
        if lora is None:
            v = math.sqrt(6.0 / (3 * patch * patch + channels))
            self.learnable_tokens = nn.Parameter(torch.empty(layers, tokens, channels).uniform_(-v, v))
        else:
            v = math.sqrt(6.0 / (3 * patch * patch + math.sqrt(channels * lora)))
            self.learnable_tokens_a = nn.Parameter(torch.empty(layers, tokens, lora).uniform_(-v, v))
            self.learnable_tokens_b = nn.Parameter(torch.empty(layers, lora, channels).uniform_(-v, v))
        self.scale = nn.Parameter(torch.tensor(scale))
        self.mlp_token2feat = nn.Linear(channels, channels)
        self.mlp_delta_f = nn.Linear(channels, channels)
        self.transform = nn.Linear(channels, query_dims)
        self.merge = nn.Linear(query_dims * 3, query_dims)


class LinearHead(nn.Module):
    """Our linear probe head under mmseg's `decode_head.` (norm<j>, linear)."""

    def __init__(self, channels, classes, levels):
        super().__init__()
        for j in range(levels):
            setattr(self, f"norm{j}", nn.LayerNorm(channels, eps=1e-6))
        self.linear = nn.Linear(levels * channels, classes)


class Segmentor(nn.Module):
    def __init__(self, lora):
        super().__init__()
        self.backbone = nn.Module()
        # query_dims 16 (Rein: 256) keeps the unused link small
        self.backbone.reins = ReinPEFT(L, C, PATCH, M, lora=lora, query_dims=16)
        self.decode_head = LinearHead(C, K, len(OUT_INDICES))


def ours(name):
    """Rein / mmseg name → our checkpoint name."""
    table = {"learnable_tokens": "tokens", "learnable_tokens_a": "tokens_a", "learnable_tokens_b": "tokens_b",
             "scale": "scale"}
    if name.startswith("backbone.reins."):
        rest = name[len("backbone.reins."):]
        if rest in table:
            return "peft/" + table[rest]
        for theirs, mine in (("mlp_token2feat.", "f_t/"), ("mlp_delta_f.", "f_d/")):
            if rest.startswith(theirs):
                return "peft/" + mine + rest[len(theirs):]
        return None   # transform / merge: the link of a query head, unused by the linear head
    rest = name[len("decode_head."):]
    module, leaf = rest.rsplit(".", 1)
    return "head/" + module + "/" + leaf


def build(kind, seed):
    torch.manual_seed(seed)
    model = Segmentor(RANK if kind == "lora" else None)
    with torch.no_grad():
        model.backbone.reins.scale.fill_(0.5)
        for p in model.decode_head.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        for m in (model.backbone.reins.mlp_token2feat, model.backbone.reins.mlp_delta_f):
            m.bias.add_(torch.randn_like(m.bias) * 0.1)
    state = model.state_dict()
    meta = {"mmseg_version": "1.2.2", "iter": 40000, "epoch": 0, "dataset_meta": {"classes": [str(i) for i in range(K)]}}
    torch.save({"meta": meta, "state_dict": state}, os.path.join(HERE, f"rein_{kind}.pth"))
    with h5py.File(os.path.join(HERE, f"native_{kind}.h5"), "w") as f:
        f.attrs["format"] = "causal-tune-checkpoint"
        f.attrs["version"] = np.int64(1)
        for name, t in state.items():
            mine = ours(name)
            if mine is None:
                continue
            a = t.detach().numpy().astype(np.float32)
            if mine == "peft/scale":
                a = a.reshape(1)
            f.create_dataset("params/" + mine, data=a)
    print(f"rein_{kind}.pth: {len(state)} tensors")


def official():
    torch.manual_seed(9)
    state = OrderedDict()
    for suffix in ("", "2"):
        state[f"backbone.reins.learnable_tokens{suffix}"] = torch.randn(2, 3, 8)
        for mlp in ("mlp_token2feat", "mlp_delta_f"):
            state[f"backbone.reins.{mlp}{suffix}.weight"] = torch.randn(8, 8)
            state[f"backbone.reins.{mlp}{suffix}.bias"] = torch.randn(8)
    state["backbone.reins.scale"] = torch.tensor(1e-3)
    torch.save({"meta": {"iter": 100}, "state_dict": state}, os.path.join(HERE, "official_causal_tune.pth"))


def foreign():
    torch.manual_seed(10)
    state = OrderedDict([("blocks.0.norm1.weight", torch.randn(8)), ("blocks.0.norm1.bias", torch.randn(8))])
    torch.save({"model": state}, os.path.join(HERE, "foreign.pth"))


if __name__ == "__main__":
    build("full", 1)
    build("lora", 2)
    official()
    foreign()
