#!/usr/bin/env python3
"""PyTorch reference of ONE training step (issue 6, "gradient parity") → Tests/TrainingTests/Fixtures/sgd_step/.

Re-run (from the repository root; CPU is enough, about a minute; CI never needs Python):

    pip install torch timm safetensors h5py numpy Pillow scipy
    python3 Tests/TrainingTests/Fixtures/make_sgd_step_fixture.py

What SGDStepParityTests checks: from the `--init` checkpoint written here and the backbone
weights below, one step of `train.optimizer: sgd` (no momentum, weight_decay 0) with
`augment: none` on the image/label pair of a `dataset: folder` moves every trainable
parameter by −lr × the gradient computed here (float64 autograd).

Everything in the step is rebuilt here, independently of the Swift code:
  * backbone: timm's DINOv2 ViT (`vit_small_patch14_dinov2` blocks = the official DINOv2
    blocks) with the shape of `dinov2_vitt14` (C = 192, 12 blocks, 3 heads, MLP 4C), input
    42×42, patch 14 → a 3×3 grid. Its weights are NOT committed (21 MB): every tensor is a
    deterministic integer-hash formula (`formula_weights`, mirrored by the Swift test, which
    writes the weights file at test time). Values are k·2⁻ⁿ, exact in float32. `pos_embed` is
    stored for a 4×4 grid and resampled to 3×3 at load time as reference §Backbone says (bicubic,
    align_corners=False) — here with F.interpolate, as the backbone fixtures do.
  * Causal-Tune after every block: `causal_tune` of Tests/PEFTTests/Fixtures/make_fixtures.py
    (written from the reference §Causal-Tune layer formulas, float64).
  * linear head + loss (reference §Heads): LayerNorm (eps 1e-6) of the post-PEFT patch tokens of each
    out_index (default [2, 5, 8, 11]), concat, Linear(4C, 19), bilinear upsample to 42×42
    (align_corners=False), cross-entropy with ignore_index=255, mean over the valid pixels.
  * data (reference §Training, `dataset: folder`, `augment: none`): the folder set has no training
    resize; the deterministic centre crop of a 45×44 image to 42×42 takes x0 = (45−42)//2,
    y0 = (44−42)//2; normalisation (RGB − mean) / std with mean (123.675, 116.28, 103.53),
    std (58.395, 57.12, 57.375). The label map has several classes and an ignored (255)
    band and ignored corner, so the valid-pixel normaliser is not the pixel count.

Variants (each an `init_<v>.h5` + `expected_<v>.h5`):
  causal_tune         method causal_tune, dct band-pass (defaults), tokens 4, full tokens
  rein_lowrank        method rein (transform identity, no filter), tokens 4, lora_rank 2

Files in sgd_step/:
  data/images/scene.png, data/labels/scene.png     the folder dataset (one pair)
  init_<v>.h5     a reference §Files checkpoint with ONLY the reference §Files root attributes (format,
                  version, step, world_size, config, created, rng_state) and /params/<name>
                  float32 — written by h5py the way a PyTorch user would
  expected_<v>.h5 /grad/<name> float32 (the float64 gradient, rounded) of every trainable parameter),
                  root attrs loss (float64, the mean CE) and valid_pixels;
                  (rounded to 16 significant bits, see round16); expected_causal_tune.h5 also
                  /backbone_checksum float64 [n], attr names: Σ_i w_i·(1 + i mod 13) of every
                  formula weight, so the Swift test can prove its formula matches this one
"""
import math
import os
import sys

import h5py
import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from timm.models.vision_transformer import _convert_dinov2

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sgd_step")
sys.dont_write_bytecode = True   # no __pycache__ inside a resource folder
sys.path.insert(0, os.path.join(HERE, "..", "..", "PEFTTests", "Fixtures"))
from make_fixtures import causal_tune  # noqa: E402  (sets float64 as the default dtype)

C, DEPTH, HEADS, PATCH, IMAGE, GRID, K = 192, 12, 3, 14, 42, 3, 19
STORED_GRID = 4                 # pos_embed grid in the weights file (resampled to GRID)
IMG_W, IMG_H = 45, 44           # the PNG; centre-cropped to IMAGE × IMAGE
OUT_INDICES = [2, 5, 8, 11]
TOKENS = 4
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])

VARIANTS = {
    "causal_tune": dict(transform="dct", mode="bandpass", shape="gaussian", low=0.2, high=0.7, discard=False,
                        rank=None, method="causal_tune"),
    "rein_lowrank": dict(transform="identity", mode="none", shape="gaussian", low=0.2, high=0.7, discard=False,
                         rank=2, method="rein"),
}


# ---------------------------------------------------------------- backbone weights (formula)

def fnv1a(name):
    h = 2166136261
    for b in name.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def hash_ints(name, count):
    """count integers in [-1024, 1023] from a 32-bit integer hash of (name, index)."""
    i = np.arange(count, dtype=np.uint64)
    m = np.uint64(0xFFFFFFFF)
    x = (i * np.uint64(2654435761) + np.uint64(fnv1a(name))) & m
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & m
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & m
    x ^= x >> np.uint64(16)
    return (x >> np.uint64(21)).astype(np.int64) - 1024


def law(name):
    """(base, amplitude) of a tensor: value = base + amplitude · k / 1024, k ∈ [−1024, 1023]."""
    if name in ("cls_token", "pos_embed"):
        return 0.0, 0.5
    if name == "mask_token":
        return 0.0, 0.0
    if name == "patch_embed.proj.weight":
        return 0.0, 1 / 32
    if name.endswith("ls1.gamma") or name.endswith("ls2.gamma"):
        return 0.25, 1 / 8
    if ("norm" in name) and name.endswith(".weight"):
        return 1.0, 1 / 8
    if name.endswith("qkv.weight"):
        return 0.0, 1 / 8
    if name.endswith("fc2.weight"):
        return 0.0, 1 / 32
    if name.endswith(".weight"):
        return 0.0, 1 / 16
    return 0.0, 1 / 32          # biases


def official_shapes():
    s = [("cls_token", (1, 1, C)), ("pos_embed", (1, 1 + STORED_GRID ** 2, C)), ("mask_token", (1, C)),
         ("patch_embed.proj.weight", (C, 3, PATCH, PATCH)), ("patch_embed.proj.bias", (C,))]
    for i in range(DEPTH):
        p = f"blocks.{i}."
        s += [(p + "norm1.weight", (C,)), (p + "norm1.bias", (C,)),
              (p + "attn.qkv.weight", (3 * C, C)), (p + "attn.qkv.bias", (3 * C,)),
              (p + "attn.proj.weight", (C, C)), (p + "attn.proj.bias", (C,)),
              (p + "ls1.gamma", (C,)),
              (p + "norm2.weight", (C,)), (p + "norm2.bias", (C,)),
              (p + "mlp.fc1.weight", (4 * C, C)), (p + "mlp.fc1.bias", (4 * C,)),
              (p + "mlp.fc2.weight", (C, 4 * C)), (p + "mlp.fc2.bias", (C,)),
              (p + "ls2.gamma", (C,))]
    s += [("norm.weight", (C,)), ("norm.bias", (C,))]
    return s


def formula_weights():
    sd = {}
    for name, shape in official_shapes():
        base, amp = law(name)
        n = int(np.prod(shape))
        sd[name] = torch.from_numpy(base + amp * hash_ints(name, n).astype(np.float64) / 1024).reshape(shape)
        assert torch.equal(sd[name].float().double(), sd[name]), name   # exact in float32
    return sd


def round16(g):
    """float32 with the low 8 mantissa bits cleared, rounding to nearest: 16 significant
    bits (relative error ≤ 2⁻¹⁶ ≈ 1.5e-5, far below the 1e-3 of the check); the zero byte
    plane makes the gzip+shuffle file smaller."""
    b = g.float().numpy().view(np.uint32).astype(np.uint64)
    return ((b + 0x80) & 0xFFFFFF00).astype(np.uint32).view(np.float32)


def checksum(t):
    v = t.reshape(-1).double()
    return float((v * (1 + torch.arange(v.numel()) % 13).double()).sum())


def backbone(sd):
    sd = dict(sd)
    pos = sd["pos_embed"]
    grid = pos[:, 1:].reshape(1, STORED_GRID, STORED_GRID, C).permute(0, 3, 1, 2)
    # reference §Backbone: the converter's resampling, in float32 as the loader does it.
    grid = F.interpolate(grid.float(), size=(GRID, GRID), mode="bicubic", align_corners=False).double()
    sd["pos_embed"] = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, GRID * GRID, C)], 1)
    m = timm.create_model("vit_small_patch14_dinov2", pretrained=False, embed_dim=C, depth=DEPTH, num_heads=HEADS,
                          img_size=IMAGE, patch_size=PATCH)
    m.load_state_dict(_convert_dinov2(sd, m), strict=True)
    return m.double().eval()


# ---------------------------------------------------------------- data (folder, augment none)

def write_data():
    rng = np.random.default_rng(20261122)
    yy, xx = np.mgrid[0:IMG_H, 0:IMG_W]
    label = np.where(yy < 15, 10, np.where(xx < 20, 0, 13)).astype(np.uint8)   # sky / road / car
    label[(yy - 30) ** 2 + (xx - 30) ** 2 < 36] = 11                          # a person
    label[yy == 24] = 255                                                      # ignored band
    label[:4, :6] = 255                                                        # ignored corner
    label[40:, 2:9] = 5                                                        # a pole
    base = np.array([[70, 130, 180], [128, 64, 128], [0, 0, 142], [220, 20, 60], [153, 153, 153]], dtype=np.int64)
    cls_index = {10: 0, 0: 1, 13: 2, 11: 3, 5: 4, 255: 1}
    rgb = np.zeros((IMG_H, IMG_W, 3), dtype=np.int64)
    for c, k in cls_index.items():
        rgb[label == c] = base[k]
    rgb = np.clip(rgb + rng.integers(-40, 41, size=rgb.shape) + (xx[..., None] * 2 - yy[..., None]), 0, 255).astype(np.uint8)
    os.makedirs(os.path.join(OUT, "data", "images"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "data", "labels"), exist_ok=True)
    Image.fromarray(rgb, "RGB").save(os.path.join(OUT, "data", "images", "scene.png"))
    Image.fromarray(label, "L").save(os.path.join(OUT, "data", "labels", "scene.png"))
    # Read back (PNG is lossless) and apply the pipeline: centre crop, normalise.
    rgb = np.asarray(Image.open(os.path.join(OUT, "data", "images", "scene.png")).convert("RGB"), dtype=np.float64)
    label = np.asarray(Image.open(os.path.join(OUT, "data", "labels", "scene.png")), dtype=np.int64)
    x0, y0 = (IMG_W - IMAGE) // 2, (IMG_H - IMAGE) // 2
    rgb = rgb[y0:y0 + IMAGE, x0:x0 + IMAGE]
    label = label[y0:y0 + IMAGE, x0:x0 + IMAGE]
    x = torch.from_numpy(((rgb - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    return x, torch.from_numpy(label[None].copy())


# ---------------------------------------------------------------- trainable parameters

def init_params(v, gen):
    u = lambda *s, a: (torch.rand(*s, generator=gen) * 2 - 1) * a
    p = {}
    if v["rank"] is None:
        p["peft/tokens"] = u(DEPTH, TOKENS, C, a=0.5)
    else:
        p["peft/tokens_a"] = u(DEPTH, TOKENS, v["rank"], a=0.7)
        p["peft/tokens_b"] = u(DEPTH, v["rank"], C, a=0.7)
    b = 1 / math.sqrt(C)
    p["peft/f_t/weight"] = u(C, C, a=b)
    p["peft/f_t/bias"] = u(C, a=b)
    p["peft/f_d/weight"] = u(C, C, a=b)
    p["peft/f_d/bias"] = u(C, a=b)
    p["peft/scale"] = torch.tensor([0.5])       # not 1e-3: every PEFT gradient is ∝ s
    for j in range(len(OUT_INDICES)):
        p[f"head/norm{j}/weight"] = 1 + u(C, a=0.2)
        p[f"head/norm{j}/bias"] = u(C, a=0.1)
    p["head/linear/weight"] = u(K, len(OUT_INDICES) * C, a=0.05)
    p["head/linear/bias"] = u(K, a=0.1)
    # Quantised to multiples of 2⁻⁹ (exact in float32; compresses in the committed file):
    # what the float32 checkpoint holds is what both sides start from.
    return {k: (torch.round(t * 512) / 512).requires_grad_(True) for k, t in p.items()}


def loss_and_grads(m, x, label, p, v):
    cfg = dict(v, prefix=1, h=GRID, w=GRID)
    peft = {k[5:]: t for k, t in p.items() if k.startswith("peft/")}
    h = m._pos_embed(m.patch_embed(x))
    feats = []
    for i, blk in enumerate(m.blocks):
        h = causal_tune(blk(h), peft, cfg, i)[0]
        if i in OUT_INDICES:
            feats.append(h[:, 1:])                                   # [1, N, C] post-PEFT patches
    ys = [F.layer_norm(f, (C,), p[f"head/norm{j}/weight"], p[f"head/norm{j}/bias"], eps=1e-6)
          for j, f in enumerate(feats)]
    logits = torch.cat(ys, dim=-1) @ p["head/linear/weight"].T + p["head/linear/bias"]   # [1, N, K]
    logits = logits.transpose(1, 2).reshape(1, K, GRID, GRID)
    up = F.interpolate(logits, size=(IMAGE, IMAGE), mode="bilinear", align_corners=False)
    loss = F.cross_entropy(up, label, ignore_index=255, reduction="mean")
    loss.backward()
    return loss.item(), {k: t.grad.detach().clone() for k, t in p.items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = formula_weights()
    m = backbone(sd)
    x, label = write_data()
    valid = int((label != 255).sum())
    gen = torch.Generator().manual_seed(6)
    for name, v in VARIANTS.items():
        p = init_params(v, gen)
        loss, grads = loss_and_grads(m, x, label, p, v)
        with h5py.File(os.path.join(OUT, f"init_{name}.h5"), "w") as f:
            f.attrs["format"] = "causal-tune-checkpoint"
            f.attrs["version"] = 1
            f.attrs["step"] = 0
            f.attrs["world_size"] = 1
            f.attrs["config"] = f"# written by Tests/TrainingTests/Fixtures/make_sgd_step_fixture.py ({name})\n"
            f.attrs["created"] = "2026-11-22T00:00:00Z"
            f.attrs["rng_state"] = np.array([1, 2, 3, 4], dtype=np.uint64)
            for k, t in p.items():
                f.create_dataset(f"params/{k}", data=t.detach().float().numpy(),
                                 compression="gzip", compression_opts=9, shuffle=True)
        with h5py.File(os.path.join(OUT, f"expected_{name}.h5"), "w") as f:
            f.attrs["loss"] = loss
            f.attrs["valid_pixels"] = valid
            for k, g in grads.items():
                f.create_dataset(f"grad/{k}", data=round16(g), compression="gzip", compression_opts=9, shuffle=True)
            if name == "causal_tune":
                f.create_dataset("backbone_checksum", data=np.array([checksum(t) for t in sd.values()]))
                f["backbone_checksum"].attrs["names"] = list(sd.keys())
        print(f"{name}: loss {loss:.6f} over {valid} valid pixels")
        for k, g in grads.items():
            print(f"  {k:24s} |p| {p[k].detach().norm():10.4g}  |g| {g.norm():10.4g}")
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
