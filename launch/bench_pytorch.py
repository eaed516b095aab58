#!/usr/bin/env python3
"""PyTorch peer of `causal-tune bench` (issue 7): the identical training step in PyTorch.

Not part of CI (needs torch + timm). Run it through `launch/bench-compare`, or alone:

    python3 launch/bench_pytorch.py --config configs/bench/vits14-224.yaml --steps 5 --threads 2 [--json out.json]

The step: timm's model of the config's backbone family — DINOv2 (VisionTransformer with
LayerScale), EVA02 (timm `Eva`: RoPE, SwiGLU, the released layout of the size) or CLIP
(VisionTransformer with `pre_norm`, QuickGELU, no patch bias) — with the dims of the
config's arch, its image size and patch size, frozen (requires_grad False: autograd
computes input gradients only), the Causal-Tune layer of reference §Causal-Tune layer after every block
(orthonormal 2-D DCT as two matrix products, Gaussian band-pass, m tokens with a null
sink, f_t/f_d shared Linear(C, C), learnable scale s), the linear head of reference §Heads (per-block
LayerNorm, one Linear over the concatenated patch tokens, bilinear upsampling to the input,
align_corners False), pixel cross-entropy (ignore 255) and one AdamW step — on random
images N(0, 1) and labels uniform over the classes, batch and input size of the config.
Reports the median step time (after one warm-up step) and the peak RSS (ru_maxrss).
Only `method: causal_tune` with `transform: dct` (full or low-rank tokens) and
`head.type: linear` are implemented.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

ARCHS = {  # name: (C, depth, heads, registers)
    "dinov2_vits14": (384, 12, 6, 0), "dinov2_vitb14": (768, 12, 12, 0),
    "dinov2_vitl14": (1024, 24, 16, 0), "dinov2_vitt14": (192, 12, 3, 0),
    "eva02_vitt14": (192, 12, 3, 0), "eva02_vits14": (384, 12, 6, 0),
    "eva02_vitb14": (768, 12, 12, 0), "eva02_vitl14": (1024, 24, 16, 0),
    "clip_vitb16": (768, 12, 12, 0), "clip_vitl14": (1024, 24, 16, 0),
}


def make_backbone(arch, size, patch, c, depth, heads, regs):
    """The frozen timm model and a function images -> (tokens x0, block runner)."""
    import timm.models.vision_transformer as vt
    if arch.startswith("eva02_"):
        from timm.models.eva import Eva
        split = c >= 768   # the released B/L layout: separate q/k/v, sub-LayerNorm in the SwiGLU
        vit = Eva(img_size=size, patch_size=patch, embed_dim=c, depth=depth, num_heads=heads, qkv_fused=not split,
                  mlp_ratio=4 * 2 / 3, swiglu_mlp=True, scale_mlp=split, use_rot_pos_emb=True, ref_feat_shape=(16, 16),
                  num_classes=0, global_pool="")

        def embed(images):
            x, rope = vit._pos_embed(vit.patch_embed(images))
            return x, (lambda blk, t: blk(t, rope=rope))
    elif arch.startswith("clip_"):
        from functools import partial
        vit = vt.VisionTransformer(img_size=size, patch_size=patch, embed_dim=c, depth=depth, num_heads=heads,
                                   mlp_ratio=4, pre_norm=True, act_layer="quick_gelu",
                                   norm_layer=partial(nn.LayerNorm, eps=1e-5), num_classes=0, global_pool="")

        def embed(images):
            return vit.norm_pre(vit._pos_embed(vit.patch_embed(images))), (lambda blk, t: blk(t))
    else:
        vit = vt.VisionTransformer(img_size=size, patch_size=patch, embed_dim=c, depth=depth, num_heads=heads,
                                   mlp_ratio=4, init_values=1e-5, reg_tokens=regs, num_classes=0, global_pool="")

        def embed(images):
            return vit._pos_embed(vit.patch_embed(images)), (lambda blk, t: blk(t))
    vit.requires_grad_(False)
    vit.eval()  # no dropout / drop-path (none configured anyway)
    return vit, embed


def dct_matrix(n):
    k = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * j + 1) * k / (2 * n))
    d[0] *= math.sqrt(1 / n)
    d[1:] *= math.sqrt(2 / n)
    return d.float()


def bandpass(h, w, low, high):
    ru = torch.arange(h, dtype=torch.float64)[:, None] / h
    rv = torch.arange(w, dtype=torch.float64)[None, :] / w
    rho2 = ru ** 2 + rv ** 2
    return (torch.exp(-rho2 / (2 * high ** 2)) * (1 - torch.exp(-rho2 / (2 * low ** 2)))).float()


class CausalTune(nn.Module):
    def __init__(self, layers, c, m, patch, h, w, low, high, rank=None):
        super().__init__()
        v = math.sqrt(6.0 / (3 * patch * patch + c))
        if rank:   # T_i = A_i B_i
            self.tokens_a = nn.Parameter(torch.empty(layers, m, rank).uniform_(-v, v))
            self.tokens_b = nn.Parameter(torch.empty(layers, rank, c).uniform_(-v, v))
        else:
            self.tokens = nn.Parameter(torch.empty(layers, m, c).uniform_(-v, v))
        self.rank = rank
        self.ft = nn.Linear(c, c)
        self.fd = nn.Linear(c, c)
        for lin in (self.ft, self.fd):
            nn.init.uniform_(lin.weight, -1 / math.sqrt(c), 1 / math.sqrt(c))
            nn.init.uniform_(lin.bias, -1 / math.sqrt(c), 1 / math.sqrt(c))
        self.scale = nn.Parameter(torch.tensor(1e-3))
        self.register_buffer("dh", dct_matrix(h))
        self.register_buffer("dw", dct_matrix(w))
        self.register_buffer("mask", bandpass(h, w, low, high).reshape(1, h * w, 1))
        self.h, self.w, self.c = h, w, c

    def forward(self, x, layer, prefix):
        b, t, c = x.shape
        h, w = self.h, self.w
        pre, xp = x[:, :prefix], x[:, prefix:]
        # F = D_h X D_wᵀ per channel: [h,h]·[b,h,w·C], then [w,w]·[b·h, w, C]
        f = torch.matmul(self.dh, xp.reshape(b, h, w * c)).reshape(b, h, w, c)
        f = torch.matmul(self.dw, f)                       # [b, h, w, c] (broadcast over b, h)
        q = f.reshape(b, h * w, c) * self.mask
        tok = self.tokens_a[layer] @ self.tokens_b[layer] if self.rank else self.tokens[layer]
        s = torch.softmax(q @ tok.t() / math.sqrt(c), dim=-1)
        delta = s[..., 1:] @ self.ft(tok[1:])
        r = self.fd(delta + q).reshape(b, h, w, c)
        # inverse: Xr = D_hᵀ R D_w
        y = torch.matmul(self.dw.t(), r)
        y = torch.matmul(self.dh.t(), y.reshape(b, h, w * c)).reshape(b, h * w, c)
        return torch.cat([pre, xp + self.scale * y], dim=1)


class LinearHead(nn.Module):
    def __init__(self, c, k, j):
        super().__init__()
        self.norms = nn.ModuleList([nn.LayerNorm(c, eps=1e-6) for _ in range(j)])
        self.linear = nn.Linear(j * c, k)
        nn.init.normal_(self.linear.weight, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, feats, h, w, size):
        y = torch.cat([n(f) for n, f in zip(self.norms, feats)], dim=-1)
        p = self.linear(y)                                  # [b, N, K]
        b = p.shape[0]
        p = p.transpose(1, 2).reshape(b, -1, h, w)
        return F.interpolate(p, size=size, mode="bilinear", align_corners=False)


def default_out_indices(depth):
    return {24: [7, 11, 15, 23], 40: [9, 19, 29, 39]}.get(depth, [depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = yaml.safe_load(open(a.config))
    mb, mp, mh = cfg["model"]["backbone"], cfg["model"]["peft"], cfg["model"]["head"]
    c, depth, heads, regs = ARCHS[mb["arch"]]
    size, batch = mb["image_size"], cfg["train"]["batch_size"]
    patch = mb.get("patch_size") or (16 if mb["arch"].endswith("16") else 14)
    assert mp.get("method", "causal_tune") == "causal_tune" and mp.get("transform", "dct") == "dct"
    assert mh["type"] == "linear"
    vit, embed = make_backbone(mb["arch"], size, patch, c, depth, heads, regs)
    g = size // patch
    filt = mp.get("filter", {})
    ct = CausalTune(depth, c, mp.get("tokens", 100), patch, g, g, filt.get("low", 0.2), filt.get("high", 0.7),
                    rank=mp.get("lora_rank"))
    outs = mh.get("out_indices") or default_out_indices(depth)
    head = LinearHead(c, mh["num_classes"], len(outs))
    params = list(ct.parameters()) + list(head.parameters())
    t = cfg["train"]
    opt = torch.optim.AdamW(params, lr=t.get("lr", 1e-4), weight_decay=t.get("weight_decay", 0.05),
                            betas=tuple(t.get("betas", [0.9, 0.999])), eps=t.get("eps", 1e-8))
    prefix = 1 + regs
    times = []
    for k in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        images = torch.randn(batch, 3, size, size)
        labels = torch.randint(0, mh["num_classes"], (batch, size, size))
        opt.zero_grad(set_to_none=False)
        x, run_block = embed(images)
        feats = []
        for i, blk in enumerate(vit.blocks):
            x = ct(run_block(blk, x), i, prefix)
            if i in outs:
                feats.append(x[:, prefix:])
        logits = head(feats, g, g, (size, size))
        loss = F.cross_entropy(logits, labels, ignore_index=255)
        loss.backward()
        opt.step()
        if k >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = {"step_s_median": med, "images_per_s": batch / med, "peak_rss_mb": rss, "step_s": times,
           "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh)


if __name__ == "__main__":
    main()
