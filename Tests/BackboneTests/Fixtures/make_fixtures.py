#!/usr/bin/env python3
"""PyTorch reference fixtures for the Backbone tests (DINOv2 parity, weight formats).

Re-run (needs torch, timm, safetensors, h5py, numpy, Pillow; never needed at runtime or in CI):

    cd Tests/BackboneTests/Fixtures && python3 make_fixtures.py

It builds tiny random-weight models of DINOv2 architecture (C = 16, 2 heads, patch 14;
`s14` with 2 blocks and an MLP, `s14_reg4` the same with 4 register tokens, `g14` one block
with the SwiGLU FFN of ViT-g), saves each in several formats, and runs timm's forward as the
reference (timm's `vit_*_dinov2` blocks are the official DINOv2 blocks; timm's own
`_convert_dinov2` turns official names into timm's).

Every weight is rounded to bfloat16 precision first (and kept away from float16's subnormal
range), so the float32, float16 and bfloat16 files hold *the same* model and one reference
serves them all.

Weight files (official DINOv2 names unless noted):
  s14.pth                  torch.save zip, float32; one weight is a transposed (non-contiguous)
                           view and one a view with a storage offset
  s14.safetensors          float16
  s14_hf.safetensors       Hugging Face Dinov2Model names (query/key/value split), float32
  s14.h5                   our HDF5 layout, datasets /backbone/<official name>, float32
  s14_reg4.pth             bfloat16, nested as a training checkpoint {"teacher": {"backbone.<name>": ...}}
  s14_reg4_hf.safetensors  Dinov2WithRegistersModel names, bfloat16
  s14_reg4_timm.safetensors timm names (reg_token, cls pos folded into cls_token), float16
  g14.pth                  SwiGLU (mlp.w12 / mlp.w3), float32
  g14_hf.safetensors       SwiGLU with HF names (mlp.weights_in / mlp.weights_out), float16
  img0.png, img1.png       56x56 RGB inputs of the `s14_56` case (normalised as reference §Training)

References (safetensors, float32): `ref_<case>.safetensors` with
  input      [B, 3, H, W]   the normalised network input
  block_<i>  [B, T, C]      all tokens after block i (T = 1 + R + h*w)
  and, for cases with a gradient check:
  dout_<i>   [B, T, C]      random weights of the loss L = sum_i sum(block_i * dout_i)
  dtokens    [B, T, C]      dL/d(tokens entering block 0)
Cases: s14_56 (grid 4x4, no resampling), s14_70 (pos grid 4x4 -> 5x5), s14_p16_80 (patch
kernel 14 -> 16 and grid 4x4 -> 5x5, as Rein's convert_dinov2 does), s14_reg4_56,
s14_reg4_p16_80, g14_56.
"""

import json
import os

import h5py
import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

torch.manual_seed(0)
np.random.seed(0)
HERE = os.path.dirname(os.path.abspath(__file__))
C, HEADS, PATCH = 16, 2, 14
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def bf16_exact(t):
    """Rounds to bfloat16 values that float16 also holds exactly."""
    t = torch.where(t.abs() < 1e-3, torch.where(t < 0, -1e-3, 1e-3), t)
    t = t.to(torch.bfloat16).to(torch.float32)
    assert torch.equal(t.to(torch.float16).to(torch.float32), t)
    return t


def official_state(depth, grid, registers, swiglu):
    """A random official-layout DINOv2 state dict."""
    sd = {}
    r = lambda *s, scale=1.0: torch.randn(*s) * scale
    sd["cls_token"] = r(1, 1, C, scale=0.5)
    sd["pos_embed"] = r(1, 1 + grid * grid, C, scale=0.5)
    if registers:
        sd["register_tokens"] = r(1, registers, C, scale=0.5)
    sd["mask_token"] = torch.zeros(1, C)
    sd["patch_embed.proj.weight"] = r(C, 3, PATCH, PATCH, scale=0.03)
    sd["patch_embed.proj.bias"] = r(C, scale=0.1)
    hidden = (int(4 * C * 2 / 3) + 7) // 8 * 8 if swiglu else 4 * C
    for i in range(depth):
        p = f"blocks.{i}."
        sd[p + "norm1.weight"] = 1 + r(C, scale=0.2)
        sd[p + "norm1.bias"] = r(C, scale=0.1)
        sd[p + "attn.qkv.weight"] = r(3 * C, C, scale=0.3)
        sd[p + "attn.qkv.bias"] = r(3 * C, scale=0.1)
        sd[p + "attn.proj.weight"] = r(C, C, scale=0.2)
        sd[p + "attn.proj.bias"] = r(C, scale=0.1)
        sd[p + "ls1.gamma"] = 0.5 + r(C, scale=0.2)
        sd[p + "norm2.weight"] = 1 + r(C, scale=0.2)
        sd[p + "norm2.bias"] = r(C, scale=0.1)
        if swiglu:
            sd[p + "mlp.w12.weight"] = r(2 * hidden, C, scale=0.2)
            sd[p + "mlp.w12.bias"] = r(2 * hidden, scale=0.1)
            sd[p + "mlp.w3.weight"] = r(C, hidden, scale=0.15)
            sd[p + "mlp.w3.bias"] = r(C, scale=0.1)
        else:
            sd[p + "mlp.fc1.weight"] = r(hidden, C, scale=0.2)
            sd[p + "mlp.fc1.bias"] = r(hidden, scale=0.1)
            sd[p + "mlp.fc2.weight"] = r(C, hidden, scale=0.1)
            sd[p + "mlp.fc2.bias"] = r(C, scale=0.1)
        sd[p + "ls2.gamma"] = 0.5 + r(C, scale=0.2)
    sd["norm.weight"] = 1 + r(C, scale=0.2)
    sd["norm.bias"] = r(C, scale=0.1)
    return {k: (v if k == "mask_token" else bf16_exact(v)) for k, v in sd.items()}


def resample(sd, grid_from, grid_to, patch_to):
    """Rein's convert_dinov2: bicubic pos-embed grid and (if needed) patch kernel."""
    sd = dict(sd)
    pos = sd["pos_embed"]
    if grid_to != grid_from:
        patch_pos = pos[:, 1:].reshape(1, grid_from, grid_from, C).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_to, grid_to), mode="bicubic", align_corners=False)
        sd["pos_embed"] = torch.cat([pos[:, :1], patch_pos.permute(0, 2, 3, 1).reshape(1, grid_to * grid_to, C)], 1)
    if patch_to != PATCH:
        sd["patch_embed.proj.weight"] = F.interpolate(
            sd["patch_embed.proj.weight"].float(), size=(patch_to, patch_to), mode="bicubic", align_corners=False)
    return sd


def timm_model(sd, depth, image, patch, registers, swiglu):
    name = "vit_giant_patch14_dinov2" if swiglu else (
        "vit_small_patch14_reg4_dinov2" if registers else "vit_small_patch14_dinov2")
    kwargs = dict(pretrained=False, embed_dim=C, depth=depth, num_heads=HEADS, img_size=image, patch_size=patch)
    if swiglu:
        kwargs["mlp_ratio"] = 2 * ((int(4 * C * 2 / 3) + 7) // 8 * 8) / C  # timm's fc1 width = 2 * hidden
    m = timm.create_model(name, **kwargs)
    from timm.models.vision_transformer import _convert_dinov2
    m.load_state_dict(_convert_dinov2(dict(sd), m), strict=True)
    return m.eval()


def reference(name, sd, depth, image, patch, registers, swiglu, x, grad):
    m = timm_model(sd, depth, image, patch, registers, swiglu)
    out = {"input": x.clone()}
    tokens = m._pos_embed(m.patch_embed(x))
    tokens = tokens.detach().requires_grad_(grad)
    h = tokens
    loss = 0
    for i, blk in enumerate(m.blocks):
        h = blk(h)
        out[f"block_{i}"] = h.detach().clone()
        if grad:
            g = torch.randn_like(h)
            out[f"dout_{i}"] = g
            loss = loss + (h * g).sum()
    if grad:
        loss.backward()
        out["dtokens"] = tokens.grad.detach().clone()
    save_file({k: v.contiguous().float() for k, v in out.items()}, os.path.join(HERE, f"ref_{name}.safetensors"),
              metadata={"image_size": str(image), "patch_size": str(patch), "registers": str(registers),
                        "depth": str(depth)})


def to_hf(sd, swiglu):
    out = {}
    for k, v in sd.items():
        if k.startswith("blocks."):
            i, rest = k[len("blocks."):].split(".", 1)
            p = f"encoder.layer.{i}."
            if rest.startswith("attn.qkv."):
                kind = rest.split(".")[-1]
                for j, part in enumerate(["query", "key", "value"]):
                    out[p + f"attention.attention.{part}.{kind}"] = v[j * C:(j + 1) * C].clone()
                continue
            rest = (rest.replace("attn.proj.", "attention.output.dense.").replace("ls1.gamma", "layer_scale1.lambda1")
                    .replace("ls2.gamma", "layer_scale2.lambda1").replace("mlp.w12.", "mlp.weights_in.")
                    .replace("mlp.w3.", "mlp.weights_out."))
            out[p + rest] = v
        else:
            out[{"cls_token": "embeddings.cls_token", "mask_token": "embeddings.mask_token",
                 "pos_embed": "embeddings.position_embeddings", "register_tokens": "embeddings.register_tokens",
                 "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
                 "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
                 "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}[k]] = v
    return out


def cast(sd, dtype):
    return {k: v.to(dtype).contiguous() for k, v in sd.items()}


def images():
    """Two smooth 56x56 RGB images saved as PNG; returns the normalised batch [2, 3, 56, 56]."""
    ys, xs = np.mgrid[0:56, 0:56].astype(np.float32)
    batch = []
    for n in range(2):
        rgb = np.stack([
            127 + 120 * np.sin(xs / (5 + n) + c) * np.cos(ys / (7 - n) - c) for c in range(3)], -1)
        rgb = np.clip(np.round(rgb + np.random.uniform(-8, 8, rgb.shape)), 0, 255).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(os.path.join(HERE, f"img{n}.png"))
        batch.append(((rgb.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(batch))


def main():
    x56 = images()
    x70 = torch.randn(1, 3, 70, 70)
    x80 = torch.randn(1, 3, 80, 80)

    # s14: 2 blocks, grid 4x4 at 56.
    s14 = official_state(2, 4, 0, False)
    reference("s14_56", s14, 2, 56, 14, 0, False, x56, True)
    reference("s14_70", resample(s14, 4, 5, 14), 2, 70, 14, 0, False, x70, False)
    reference("s14_p16_80", resample(s14, 4, 5, 16), 2, 80, 16, 0, False, x80, False)

    pth = dict(s14)
    # A non-contiguous view (strides (1, C)) and a view with a storage offset.
    pth["blocks.0.attn.proj.weight"] = s14["blocks.0.attn.proj.weight"].t().contiguous().t()
    big = torch.cat([torch.zeros(7), s14["blocks.1.norm1.bias"], torch.zeros(3)])
    pth["blocks.1.norm1.bias"] = big[7:7 + C]
    assert not pth["blocks.0.attn.proj.weight"].is_contiguous()
    assert pth["blocks.1.norm1.bias"].storage_offset() == 7
    torch.save(pth, os.path.join(HERE, "s14.pth"))
    save_file(cast(s14, torch.float16), os.path.join(HERE, "s14.safetensors"))
    save_file(cast(to_hf(s14, False), torch.float32), os.path.join(HERE, "s14_hf.safetensors"))
    with h5py.File(os.path.join(HERE, "s14.h5"), "w") as f:
        f.attrs["format"] = "causal-tune-checkpoint"
        f.attrs["version"] = 1
        for k, v in s14.items():
            f.create_dataset(f"backbone/{k}", data=v.numpy().astype(np.float32))

    # s14_reg4: 4 registers.
    reg = official_state(2, 4, 4, False)
    reference("s14_reg4_56", reg, 2, 56, 14, 4, False, torch.randn(2, 3, 56, 56), True)
    reference("s14_reg4_p16_80", resample(reg, 4, 5, 16), 2, 80, 16, 4, False, x80, False)
    torch.save({"teacher": {"backbone." + k: v.to(torch.bfloat16) for k, v in reg.items()}, "iteration": 7},
               os.path.join(HERE, "s14_reg4.pth"))
    save_file(cast(to_hf(reg, False), torch.bfloat16), os.path.join(HERE, "s14_reg4_hf.safetensors"))
    tm = timm_model(reg, 2, 56, 14, 4, False)
    save_file(cast(tm.state_dict(), torch.float16), os.path.join(HERE, "s14_reg4_timm.safetensors"))

    # g14: SwiGLU, 1 block.
    g14 = official_state(1, 4, 0, True)
    reference("g14_56", g14, 1, 56, 14, 0, True, torch.randn(1, 3, 56, 56), False)
    torch.save(g14, os.path.join(HERE, "g14.pth"))
    save_file(cast(to_hf(g14, True), torch.float16), os.path.join(HERE, "g14_hf.safetensors"))

    # The official hub forward's position interpolation at another resolution (dinov2
    # `interpolate_pos_encoding`: scale_factor = (g + 0.1) / M, antialias off), 4x4 -> 5x5.
    pos = s14["pos_embed"]
    grid = pos[:, 1:].reshape(1, 4, 4, C).permute(0, 3, 1, 2)
    hub = F.interpolate(grid, scale_factor=((5 + 0.1) / 4, (5 + 0.1) / 4), mode="bicubic", antialias=False)
    save_file({"pos_embed": torch.cat([pos[:, :1], hub.permute(0, 2, 3, 1).reshape(1, 25, C)], 1).contiguous()},
              os.path.join(HERE, "ref_pos_hub_5x5.safetensors"))

    total = sum(os.path.getsize(os.path.join(HERE, f)) for f in os.listdir(HERE))
    print(json.dumps({"files": sorted(os.listdir(HERE)), "bytes": total}, indent=1))


if __name__ == "__main__":
    main()
