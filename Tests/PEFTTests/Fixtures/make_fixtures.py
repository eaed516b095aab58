#!/usr/bin/env python3
"""PyTorch reference of the Causal-Tune layer (reference §Causal-Tune layer) → fixtures for Tests/PEFTTests.

Re-run (from the repository root; needs torch, numpy, scipy — CPU is enough):

    python3 Tests/PEFTTests/Fixtures/make_fixtures.py

It rewrites Tests/PEFTTests/Fixtures/causal_tune_reference.json. Written from the
formulas of docs/reference.md only (float64 throughout, autograd for every gradient), independent of the Swift
code: the DCT is the reference's matrix (checked against scipy.fft.dctn), the Hartley transform
is Re − Im of torch.fft.fft2(norm="ortho"), the Haar transform is written with strided
slices (Mallat layout, detail = (even − odd)/√2).

Each case: a layer set with L = 2 layers, the forward of layer 1 on tokens x [B, T, C]
(T = prefix + h·w), loss = Σ out ⊙ gout, and the gradients of x, the tokens (or the
low-rank factors), f_t, f_d and s. Also spectrum, causal ([B, C, h, w]), mask [h, w] and
band_energy [B, 3] (fractions of Σ F² weighted low = 1 − a, causal = a·b, high = a·(1 − b),
with a, b the mask's low-cut and high-cut factors, 1 where the mode does not use them).
"""
import json
import math
import os

import numpy as np
import scipy.fft
import torch

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- transforms on [B, C, h, w]

def dct_matrix(n):
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * j + 1) * k / (2 * n))
    alpha = torch.full((n, 1), math.sqrt(2.0 / n))
    alpha[0, 0] = math.sqrt(1.0 / n)
    return alpha * d


def dct2(x):
    h, w = x.shape[-2:]
    return dct_matrix(h) @ x @ dct_matrix(w).T


def idct2(f):
    h, w = f.shape[-2:]
    return dct_matrix(h).T @ f @ dct_matrix(w)


def hartley2(x):
    f = torch.fft.fft2(x, norm="ortho")
    return f.real - f.imag


def haar_levels(h, w):
    levels = []
    while h % 2 == 0 and w % 2 == 0 and h >= 2 and w >= 2:
        levels.append((h, w))
        h //= 2
        w //= 2
    return levels


def haar_rows(x):  # along dim -2: [a; d]
    e, o = x[..., 0::2, :], x[..., 1::2, :]
    return torch.cat([(e + o) / math.sqrt(2), (e - o) / math.sqrt(2)], dim=-2)


def ihaar_rows(y):
    n = y.shape[-2] // 2
    a, d = y[..., :n, :], y[..., n:, :]
    e, o = (a + d) / math.sqrt(2), (a - d) / math.sqrt(2)
    return torch.stack([e, o], dim=-2).reshape(*y.shape[:-2], 2 * n, y.shape[-1])


def haar2(x):
    out = x
    for hs, ws in haar_levels(*x.shape[-2:]):
        blk = out[..., :hs, :ws]
        blk = haar_rows(blk)
        blk = haar_rows(blk.transpose(-1, -2)).transpose(-1, -2)
        out = out.clone()
        out[..., :hs, :ws] = blk
    return out


def ihaar2(f):
    out = f
    for hs, ws in reversed(haar_levels(*f.shape[-2:])):
        blk = out[..., :hs, :ws]
        blk = ihaar_rows(blk.transpose(-1, -2)).transpose(-1, -2)
        blk = ihaar_rows(blk)
        out = out.clone()
        out[..., :hs, :ws] = blk
    return out


TRANSFORMS = {
    "dct": (dct2, idct2),
    "fft": (hartley2, hartley2),
    "haar": (haar2, ihaar2),
    "identity": (lambda x: x, lambda x: x),
}


def rho_axis(transform, n):
    u = np.arange(n, dtype=np.float64)
    if transform == "fft":
        return 2 * np.minimum(u, n - u) / n
    return u / n


def factors(cfg, h, w):
    ru, rv = rho_axis(cfg["transform"], h), rho_axis(cfg["transform"], w)
    rho = np.sqrt(ru[:, None] ** 2 + rv[None, :] ** 2)
    lo, hi = cfg["low"], cfg["high"]
    mode, shape = cfg["mode"], cfg["shape"]
    if shape == "gaussian":
        a = 1 - np.exp(-rho ** 2 / (2 * lo ** 2))
        b = np.exp(-rho ** 2 / (2 * hi ** 2))
    else:
        a = (rho >= lo).astype(np.float64)
        b = (rho <= hi).astype(np.float64)
    if mode not in ("bandpass", "lowcut"):
        a = np.ones_like(rho)
    if mode not in ("bandpass", "highcut"):
        b = np.ones_like(rho)
    return a, b


# ---------------------------------------------------------------- the layer (reference §Causal-Tune layer)

def causal_tune(x, p, cfg, layer):
    """x [B, T, C] → out [B, T, C]; also returns spectrum and causal [B, C, h, w]."""
    B, T, C = x.shape
    P, h, w = cfg["prefix"], cfg["h"], cfg["w"]
    fwd, inv = TRANSFORMS[cfg["transform"]]
    a, b = factors(cfg, h, w)
    mask = torch.from_numpy(a * b)
    prefix, patches = x[:, :P], x[:, P:]
    xmap = patches.transpose(1, 2).reshape(B, C, h, w)          # channel-first maps
    spec = fwd(xmap)
    fc = spec * mask
    q = fc.reshape(B, C, h * w).transpose(1, 2)                 # [B, N, C], token u·w+v
    if "tokens" in p:
        tok = p["tokens"][layer]
    else:
        tok = p["tokens_a"][layer] @ p["tokens_b"][layer]
    attn = torch.softmax(torch.einsum("bnc,mc->bnm", q, tok) / math.sqrt(C), dim=-1)
    value = tok[1:] @ p["f_t/weight"].T + p["f_t/bias"]
    delta = torch.einsum("bnm,mc->bnc", attn[:, :, 1:], value)
    r = (delta + q) @ p["f_d/weight"].T + p["f_d/bias"]
    rmap = r.transpose(1, 2).reshape(B, C, h, w)
    if cfg["discard"]:
        outmap = inv(fc) + p["scale"][0] * inv(rmap)
    else:
        outmap = xmap + p["scale"][0] * inv(rmap)
    out = torch.cat([prefix, outmap.reshape(B, C, h * w).transpose(1, 2)], dim=1)
    return out, spec, fc, mask


def band_energy(spec, cfg):
    a, b = factors(cfg, cfg["h"], cfg["w"])
    e = (spec ** 2).sum(dim=1)                                 # [B, h, w]
    total = e.sum(dim=(1, 2))
    low = (e * torch.from_numpy(1 - a)).sum(dim=(1, 2)) / total
    causal = (e * torch.from_numpy(a * b)).sum(dim=(1, 2)) / total
    high = (e * torch.from_numpy(a * (1 - b))).sum(dim=(1, 2)) / total
    return torch.stack([low, causal, high], dim=1)


# ---------------------------------------------------------------- cases

CASES = [
    dict(name="dct_default", transform="dct", mode="bandpass", shape="gaussian", low=0.2, high=0.7,
         discard=False, rank=None, prefix=1, h=4, w=6),
    dict(name="rein", transform="identity", mode="none", shape="gaussian", low=0.2, high=0.7,
         discard=False, rank=None, prefix=5, h=4, w=6),
    dict(name="low_rank", transform="dct", mode="bandpass", shape="gaussian", low=0.2, high=0.7,
         discard=False, rank=3, prefix=1, h=4, w=6),
    dict(name="fft", transform="fft", mode="bandpass", shape="gaussian", low=0.2, high=0.7,
         discard=False, rank=None, prefix=5, h=4, w=6),
    dict(name="haar", transform="haar", mode="bandpass", shape="gaussian", low=0.2, high=0.7,
         discard=False, rank=None, prefix=1, h=4, w=8),
    dict(name="dct_ideal_lowcut_discard", transform="dct", mode="lowcut", shape="ideal", low=0.3, high=0.7,
         discard=True, rank=None, prefix=5, h=4, w=6),
]
B, C, M, L, LAYER = 2, 16, 10, 2, 1


def check_transforms():
    x = torch.randn(2, 3, 4, 6)
    ref = torch.from_numpy(scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho"))
    assert torch.allclose(dct2(x), ref, atol=1e-12)
    for name, (f, g) in TRANSFORMS.items():
        for shape in [(2, 3, 4, 6), (1, 2, 8, 4)]:
            y = torch.randn(*shape)
            assert torch.allclose(g(f(y)), y, atol=1e-12), name
            assert abs((f(y) ** 2).sum() - (y ** 2).sum()) < 1e-9, name
    # Hartley against the cas kernel sum.
    y = torch.randn(1, 1, 4, 6)
    u = torch.arange(4.).view(4, 1, 1, 1); v = torch.arange(6.).view(1, 6, 1, 1)
    i = torch.arange(4.).view(1, 1, 4, 1); j = torch.arange(6.).view(1, 1, 1, 6)
    th = 2 * math.pi * (u * i / 4 + v * j / 6)
    H = ((torch.cos(th) + torch.sin(th)) * y[0, 0]).sum(dim=(2, 3)) / math.sqrt(24)
    assert torch.allclose(hartley2(y)[0, 0], H, atol=1e-12)


def main():
    check_transforms()
    gen = torch.Generator().manual_seed(20261122)
    cases = []
    for cfg in CASES:
        P, h, w = cfg["prefix"], cfg["h"], cfg["w"]
        T = P + h * w
        x = torch.randn(B, T, C, generator=gen)
        gout = torch.randn(B, T, C, generator=gen)
        p = {}
        if cfg["rank"] is None:
            p["tokens"] = torch.rand(L, M, C, generator=gen) * 2 - 1
        else:
            p["tokens_a"] = torch.rand(L, M, cfg["rank"], generator=gen) * 2 - 1
            p["tokens_b"] = torch.rand(L, cfg["rank"], C, generator=gen) * 2 - 1
        bound = 1 / math.sqrt(C)
        for k in ["f_t/weight", "f_d/weight"]:
            p[k] = (torch.rand(C, C, generator=gen) * 2 - 1) * bound
        for k in ["f_t/bias", "f_d/bias"]:
            p[k] = (torch.rand(C, generator=gen) * 2 - 1) * bound
        p["scale"] = torch.tensor([0.5])
        # Round everything to float32 first so both sides see the same inputs.
        x = x.float().double().requires_grad_(True)
        gout = gout.float().double()
        for k in p:
            p[k] = p[k].float().double().requires_grad_(True)
        out, spec, fc, mask = causal_tune(x, p, cfg, LAYER)
        (out * gout).sum().backward()
        energy = band_energy(spec.detach(), cfg)
        flat = lambda t: [float(f"{v:.9g}") for v in t.detach().reshape(-1).float().tolist()]
        cases.append(dict(
            name=cfg["name"], transform=cfg["transform"], mode=cfg["mode"], shape=cfg["shape"],
            low=cfg["low"], high=cfg["high"], discard=cfg["discard"], rank=cfg["rank"],
            B=B, C=C, h=h, w=w, prefix=P, tokens=M, layers=L, layer=LAYER,
            x=flat(x), gout=flat(gout),
            params={("peft/" + k): flat(v) for k, v in p.items()},
            out=flat(out), dx=flat(x.grad),
            grads={("peft/" + k): flat(v.grad) for k, v in p.items()},
            spectrum=flat(spec), causal=flat(fc), mask=flat(mask), band_energy=flat(energy),
        ))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "causal_tune_reference.json")
    with open(path, "w") as f:
        json.dump(dict(generator="Tests/PEFTTests/Fixtures/make_fixtures.py", cases=cases), f, separators=(",", ":"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
