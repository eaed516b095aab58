#!/usr/bin/env python3
"""Checks a file written by `causal-tune export` in PyTorch (needs torch, h5py, numpy;
safetensors for the .safetensors form). Not run by CI (no torch there); run by hand:

    causal-tune export --checkpoint RUN/iter_N.h5 --format mmseg --out /tmp/x.pth
    python3 Tests/TrainingTests/Fixtures/rein/check_export.py /tmp/x.pth RUN/iter_N.h5 [--resave OUT.pth]

1. torch.load(FILE, weights_only=True) — the restricted unpickler accepts the file;
2. builds Rein's modules with the sizes read from the checkpoint — the PEFT module with the
   parameter structure of Rein's `Reins` / `LoRAReins` (under `backbone.reins`) and, for a
   Mask2Former checkpoint, the head with mmdet's / mmseg's module names (`ReinMask2FormerHead`
   with `replace_query_feat=True`: pixel decoder, transformer decoder, level_embed,
   cls_embed, mask_embed, querys2feat; under `decode_head`) — and loads the state dict
   with strict=True (every key present, none extra, every shape equal);
3. compares every tensor bit for bit with /params of our HDF5 checkpoint;
4. with --resave, writes the loaded module's state dict again with torch.save in mmseg's
   layout, for the import direction (PyTorch's own writer → `causal-tune … --checkpoint`).
A .safetensors file (export --format safetensors) gets steps 2 and 3.
"""
import argparse
import sys

import h5py
import numpy as np
import torch
from torch import nn


class ReinPEFT(nn.Module):
    def __init__(self, layers, channels, tokens, lora, query_dims):
        super().__init__()
        if lora is None:
            self.learnable_tokens = nn.Parameter(torch.zeros(layers, tokens, channels))
        else:
            self.learnable_tokens_a = nn.Parameter(torch.zeros(layers, tokens, lora))
            self.learnable_tokens_b = nn.Parameter(torch.zeros(layers, lora, channels))
        self.scale = nn.Parameter(torch.tensor(0.0))
        self.mlp_token2feat = nn.Linear(channels, channels)
        self.mlp_delta_f = nn.Linear(channels, channels)
        self.transform = nn.Linear(channels, query_dims)
        self.merge = nn.Linear(query_dims * 3, query_dims)


class ConvNorm(nn.Module):               # mmcv ConvModule with a GN norm
    def __init__(self, cin, cout, k, bias, groups=32):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)
        self.gn = nn.GroupNorm(groups, cout)


class FFN(nn.Module):                    # mmcv FFN: layers = [[Linear, ReLU, Dropout], Linear, Dropout]
    def __init__(self, d, hidden):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(0.0)),
                                    nn.Linear(hidden, d), nn.Dropout(0.0))


class DeformableAttention(nn.Module):    # mmcv MultiScaleDeformableAttention
    def __init__(self, d, heads, levels, points):
        super().__init__()
        self.sampling_offsets = nn.Linear(d, heads * levels * points * 2)
        self.attention_weights = nn.Linear(d, heads * levels * points)
        self.value_proj = nn.Linear(d, d)
        self.output_proj = nn.Linear(d, d)


class EncoderLayer(nn.Module):
    def __init__(self, d, ff, heads, levels, points):
        super().__init__()
        self.self_attn = DeformableAttention(d, heads, levels, points)
        self.ffn = FFN(d, ff)
        self.norms = nn.ModuleList([nn.LayerNorm(d), nn.LayerNorm(d)])


class MHA(nn.Module):                    # mmcv MultiheadAttention wraps nn.MultiheadAttention as .attn
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)


class DecoderLayer(nn.Module):
    def __init__(self, d, ff, heads):
        super().__init__()
        self.self_attn = MHA(d, heads)
        self.cross_attn = MHA(d, heads)
        self.ffn = FFN(d, ff)
        self.norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(3)])


class PixelDecoder(nn.Module):           # mmdet MSDeformAttnPixelDecoder, 4 inputs, 3 encoder levels
    def __init__(self, cin, d, enc_layers, heads, points, ff):
        super().__init__()
        self.input_convs = nn.ModuleList([ConvNorm(cin, d, 1, True) for _ in range(3)])
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([EncoderLayer(d, ff, heads, 3, points) for _ in range(enc_layers)])
        self.level_encoding = nn.Embedding(3, d)
        self.lateral_convs = nn.ModuleList([ConvNorm(cin, d, 1, False)])
        self.output_convs = nn.ModuleList([ConvNorm(d, d, 3, False)])
        self.mask_feature = nn.Conv2d(d, d, 1)


class Mask2FormerHead(nn.Module):        # mmseg Mask2FormerHead as Rein's ReinMask2FormerHead configures it
    def __init__(self, cin, classes, d=256, dec_layers=9, enc_layers=6, heads=8, points=4, enc_ff=1024, dec_ff=2048):
        super().__init__()
        self.pixel_decoder = PixelDecoder(cin, d, enc_layers, heads, points, enc_ff)
        self.transformer_decoder = nn.Module()
        self.transformer_decoder.layers = nn.ModuleList([DecoderLayer(d, dec_ff, heads) for _ in range(dec_layers)])
        self.transformer_decoder.post_norm = nn.LayerNorm(d)
        self.level_embed = nn.Embedding(3, d)
        self.cls_embed = nn.Linear(d, classes + 1)
        self.mask_embed = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.querys2feat = nn.Linear(d, d)


class LinearHead(nn.Module):
    def __init__(self, channels, classes, levels):
        super().__init__()
        for j in range(levels):
            setattr(self, f"norm{j}", nn.LayerNorm(channels, eps=1e-6))
        self.linear = nn.Linear(levels * channels, classes)


def build(state):
    model = nn.Module()
    model.backbone = nn.Module()
    if "backbone.reins.learnable_tokens" in state:
        L, m, C = state["backbone.reins.learnable_tokens"].shape
        lora = None
    else:
        L, m, lora = state["backbone.reins.learnable_tokens_a"].shape
        C = state["backbone.reins.learnable_tokens_b"].shape[2]
    if "decode_head.cls_embed.weight" in state:
        d = state["decode_head.cls_embed.weight"].shape[1]
        classes = state["decode_head.cls_embed.weight"].shape[0] - 1
        model.backbone.reins = ReinPEFT(L, C, m, lora, d)
        model.decode_head = Mask2FormerHead(C, classes, d)
    else:
        model.backbone.reins = ReinPEFT(L, C, m, lora, 256)
        del model.backbone.reins.transform, model.backbone.reins.merge   # no query head: no link
        levels = sum(1 for k in state if k.startswith("decode_head.norm") and k.endswith(".weight"))
        model.decode_head = LinearHead(C, state["decode_head.linear.weight"].shape[0], levels)
    return model


def ours(name):
    if name.startswith("backbone.reins."):
        rest = name[len("backbone.reins."):]
        table = {"learnable_tokens": "peft/tokens", "learnable_tokens_a": "peft/tokens_a",
                 "learnable_tokens_b": "peft/tokens_b", "scale": "peft/scale"}
        if rest in table:
            return table[rest]
        for theirs, mine in (("mlp_token2feat.", "peft/f_t/"), ("mlp_delta_f.", "peft/f_d/")):
            if rest.startswith(theirs):
                return mine + rest[len(theirs):]
        return "head/link." + rest
    rest = name[len("decode_head."):]
    if rest.startswith("norm") or rest.startswith("linear."):
        module, leaf = rest.rsplit(".", 1)
        return "head/" + module + "/" + leaf
    return "head/" + rest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("h5")
    ap.add_argument("--resave")
    a = ap.parse_args()
    if a.file.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(a.file)
        print(f"safetensors: {len(state)} tensors")
    else:
        ckpt = torch.load(a.file, weights_only=True)
        state = ckpt["state_dict"]
        print(f"torch.load(weights_only=True): meta {ckpt.get('meta')}, {len(state)} tensors")
    model = build(state)
    result = model.load_state_dict(state, strict=True)
    print(f"load_state_dict(strict=True): {result}")
    loaded = model.state_dict()
    differ = 0
    with h5py.File(a.h5, "r") as f:
        names = []
        f["params"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert len(names) == len(loaded), f"{len(names)} params in the HDF5 file, {len(loaded)} in the module"
        for k, t in loaded.items():
            want = np.asarray(f["params/" + ours(k)][()], dtype=np.float32).reshape(tuple(t.shape))
            got = t.detach().numpy()
            if got.dtype != np.float32 or got.tobytes() != want.tobytes():
                differ += 1
                print("differs:", k)
    print(f"bit-identical tensors: {len(loaded) - differ}/{len(loaded)}")
    if a.resave:
        torch.save({"meta": {"iter": 1}, "state_dict": loaded}, a.resave)
        print("re-saved with torch.save:", a.resave)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
