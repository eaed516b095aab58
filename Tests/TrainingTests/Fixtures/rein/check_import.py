#!/usr/bin/env python3
"""Checks that an imported Rein checkpoint computes Rein's own layer (needs torch, h5py).
Not run by CI; by hand, from the repository root:

    causal-tune features --config C.yaml --checkpoint REIN.pth --out /tmp/dump.h5 IMAGE...
    python3 Tests/TrainingTests/Fixtures/rein/check_import.py /tmp/dump.h5 REIN.pth

C.yaml must describe the checkpoint's model with `model.peft.method: rein`. For every layer
of the dump, Rein's PEFT forward (written here from the semantics of Rein's `reins.py`:
softmax(X Tᵀ / √C) over the tokens, token 0 a sink, ΔF = S[:, 1:] · mlp_token2feat(T[1:]),
X + scale · mlp_delta_f(ΔF + X)) is applied in float64 to the dump's `spatial` (the patch
tokens entering the layer) with the tensors of REIN.pth, and compared with the dump's
`refined` (what our layer produced). Prints the largest relative error.
"""
import sys

import h5py
import numpy as np
import torch

dump, pth = sys.argv[1], sys.argv[2]
sd = torch.load(pth, weights_only=True)
sd = sd.get("state_dict", sd)
g = lambda k: sd["backbone.reins." + k].double()
if "backbone.reins.learnable_tokens" in sd:
    tokens = g("learnable_tokens")
else:
    tokens = g("learnable_tokens_a") @ g("learnable_tokens_b")
worst = 0.0
with h5py.File(dump, "r") as f:
    layers = sorted(k for k in f.keys() if k.startswith("layer_"))
    for name in layers:
        layer = int(name[len("layer_"):])
        x = torch.from_numpy(f[name + "/spatial"][()]).double()          # [B, C, h, w]
        B, C, h, w = x.shape
        feats = x.reshape(B, C, h * w).permute(0, 2, 1)                  # [B, N, C]
        t = tokens[layer]
        attn = torch.softmax(feats @ t.T * C ** -0.5, dim=-1)
        delta = attn[..., 1:] @ (t[1:] @ g("mlp_token2feat.weight").T + g("mlp_token2feat.bias"))
        delta = (delta + feats) @ g("mlp_delta_f.weight").T + g("mlp_delta_f.bias")
        want = (feats + g("scale") * delta).permute(0, 2, 1).reshape(B, C, h, w)
        got = torch.from_numpy(f[name + "/refined"][()]).double()
        err = ((got - want).abs().max() / want.abs().max()).item()
        worst = max(worst, err)
        print(f"{name}: max relative error {err:.2e}")
print(f"largest relative error over {len(layers)} layers: {worst:.2e}")
sys.exit(0 if worst < 1e-4 else 1)
