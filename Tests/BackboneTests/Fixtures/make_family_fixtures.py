#!/usr/bin/env python3
"""PyTorch reference fixtures for the EVA02 and CLIP backbone families (parity, weight formats).

Re-run (needs torch, timm, transformers, safetensors, numpy, Pillow; never needed at runtime or in CI):

    cd Tests/BackboneTests/Fixtures && python3 make_family_fixtures.py

Same conventions as make_fixtures.py (DINOv2): every tensor is random and rounded to bfloat16
precision (kept away from float16's subnormal range), so the float32, float16 and bfloat16 files
hold *the same* model and one reference serves them all.  Each reference is produced by one
library (timm for EVA02, transformers for CLIP) and cross-checked here against a second,
independent implementation written from the official code (EVA-02 `modeling_finetune.py` /
`rope.py`; OpenAI CLIP `model.py`), and for CLIP against timm too; the script fails if they differ.

EVA02 tiny: C = 32, 2 heads (head_dim 16 -> 4 RoPE frequencies), depth 2, patch 14, pos grid 4x4
(image 56), SwiGLU hidden int(C * 4 * 2 / 3) = 85, LayerNorm eps 1e-6, no LayerScale, q/v biases
(no k bias), 2-D RoPE on the patch tokens' q and k (pt_seq_len / ref_feat_shape 16, so coordinate
i is i / g * 16).
  eva02_fused.pth             official names as released for T/S ({"model": sd}, float32): attn.qkv.weight,
                              attn.q_bias, attn.v_bias, mlp.w12 (gate rows first), mlp.w3; plus rope.freqs_cos/
                              freqs_sin, blocks.N.attn.rope.freqs_cos/freqs_sin, mask_token, lm_head.*, norm.*
                              that a backbone loader must ignore
  eva02_fused_timm.safetensors timm `Eva` names (attn.qkv, attn.q_bias, attn.v_bias, mlp.fc1, mlp.fc2, fc_norm.*), float16
  eva02_split.pth             official names as released for B/L ({"module": sd}, bfloat16): attn.q_proj/k_proj/
                              v_proj.weight, attn.q_bias, attn.v_bias, mlp.w1 (gate), mlp.w2, mlp.ffn_ln, mlp.w3
  eva02_split_timm.safetensors timm names (attn.q_proj.{weight,bias}, attn.k_proj.weight, attn.v_proj.{weight,bias},
                              mlp.fc1_g, mlp.fc1_x, mlp.norm, mlp.fc2, fc_norm.*), float32
  eva02_split_rein.pth        flat dict {"backbone.<official name>": tensor} (mmseg style), float16
CLIP tiny (OpenAI visual tower): C = 32, 2 heads, depth 2, MLP 128 QuickGELU, LayerNorm eps 1e-5,
patch 16 (conv without bias), pos grid 4x4 (image 64), ln_pre before the blocks.
  clip_hf.safetensors         transformers CLIPModel names (vision_model.*, plus text_model.*, visual_projection,
                              text_projection, logit_scale and an int64 vision_model.embeddings.position_ids as
                              older hub files carry), float32
  clip_hf_vision.safetensors  transformers 5 CLIPVisionModel names (embeddings.*, pre_layrnorm.*, encoder.layers.N.*,
                              post_layernorm.*; no `vision_model.` prefix), bfloat16
  clip_openai.pth             OpenAI state dict (visual.* plus text-tower keys), float16 as OpenAI releases it
  clip_timm.safetensors       timm vit_base_patch16_clip_quickgelu_224 names (cls_token [1,1,C], pos_embed [1,1+g*g,C],
                              patch_embed.proj.weight, norm_pre, blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,
                              mlp.fc2}, norm), float16

References (safetensors, float32), same layout as make_fixtures.py: `ref_<case>.safetensors` with
  input      [B, 3, H, W]   the network input
  block_<i>  [B, T, C]      all tokens after block i (T = 1 + h*w, class token first)
  and, for cases with a gradient check:
  dout_<i>   [B, T, C]      random weights of the loss L = sum_i sum(block_i * dout_i)
  dtokens    [B, T, C]      dL/d(tokens entering block 0) (EVA02: after + pos_embed; CLIP: after ln_pre)
  metadata: image_size, patch_size, depth, family.
Cases: eva02_fused_56 (input = img0.png), eva02_split_56 (+ gradient; input = img0.png, img1.png;
both PNGs are make_fixtures.py's, ImageNet-normalised),
eva02_split_p16_80 (pos grid 4x4 -> 5x5 bicubic, patch kernel 14 -> 16 bicubic, both
align_corners=False as Rein's convert_eva2; RoPE at g = 5, coordinates i / 5 * 16),
clip_64 (+ gradient), clip_80 (pos grid 4x4 -> 5x5 bicubic), clip_80_bilinear (pos grid
4x4 -> 5x5 bilinear align_corners=False, as Rein's CLIP backbone resizes positions).
"""

import json
import os
from functools import partial

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

torch.manual_seed(0)
np.random.seed(0)
HERE = os.path.dirname(os.path.abspath(__file__))
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)

# EVA02 tiny
EC, EHEADS, EDEPTH, EPATCH, EGRID = 32, 2, 2, 14, 4
EHD = EC // EHEADS
EHIDDEN = int(EC * (4 * 2 / 3))  # 85 = floor(8C/3), as official Block / timm Eva compute it
RoPE_REF = 16  # official pt_hw_seq_len (224 / 14), timm ref_feat_shape
# CLIP tiny
CC, CHEADS, CDEPTH, CPATCH, CGRID, CHIDDEN = 32, 2, 2, 16, 4, 128
# CLIP text tower (ignored by the backbone loader)
TC, TCTX, TVOCAB, PROJ = 16, 5, 10, 8

new_files = []


def out(name):
    new_files.append(name)
    return os.path.join(HERE, name)


def bf16_exact(t):
    """Rounds to bfloat16 values that float16 also holds exactly."""
    t = torch.where(t.abs() < 1e-3, torch.where(t < 0, -1e-3, 1e-3), t)
    t = t.to(torch.bfloat16).to(torch.float32)
    assert torch.equal(t.to(torch.float16).to(torch.float32), t)
    return t


def r(*s, scale=1.0):
    return torch.randn(*s) * scale


def cast(sd, dtype):
    return {k: v.to(dtype).contiguous() for k, v in sd.items()}


def check(name, a, b, tol=2e-5):
    err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)
    print(f"  {name}: rel err {err:.2e}")
    assert err < tol, f"{name}: references disagree ({err})"


def save_ref(name, x, outs, grads=None, patch=0, family=""):
    d = {"input": x.clone()}
    for i, o in enumerate(outs):
        d[f"block_{i}"] = o
    if grads is not None:
        douts, dtokens = grads
        for i, g in enumerate(douts):
            d[f"dout_{i}"] = g
        d["dtokens"] = dtokens
    save_file({k: v.detach().contiguous().float() for k, v in d.items()}, out(f"ref_{name}.safetensors"),
              metadata={"image_size": str(x.shape[-1]), "patch_size": str(patch), "depth": str(len(outs)),
                        "family": family})
    print(f"ref_{name}: input {list(x.shape)}, blocks {list(outs[0].shape)}, "
          f"max |block| {max(o.abs().max().item() for o in outs):.2f}")


def run_blocks(tokens, blocks, grad):
    """Runs `blocks` (callables on tokens) from `tokens`; returns outputs and (douts, dtokens)."""
    tokens = tokens.detach().clone().requires_grad_(grad)
    h, outs, douts, loss = tokens, [], [], 0
    for blk in blocks:
        h = blk(h)
        outs.append(h)
        if grad:
            g = torch.randn_like(h)
            douts.append(g)
            loss = loss + (h * g).sum()
    if grad:
        loss.backward()
        return [o.detach() for o in outs], (douts, tokens.grad.detach().clone())
    return [o.detach() for o in outs], None


# ----------------------------------------------------------------------------------------------
# EVA02
# ----------------------------------------------------------------------------------------------

def official_rope(g):
    """EVA-02 rope.py VisionRotaryEmbeddingFast(dim=head_dim/2, pt_seq_len=16, ft_seq_len=g)."""
    dim = EHD // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))  # head_dim/4 frequencies
    t = torch.arange(g) / g * RoPE_REF
    f = torch.einsum("..., f -> ... f", t, freqs)
    f = f.repeat_interleave(2, -1)  # repeat '... n -> ... (n r)', r=2: interleaved pairs
    f = torch.cat([f[:, None, :].expand(g, g, -1), f[None, :, :].expand(g, g, -1)], -1)  # rows, then columns
    return f.cos().reshape(g * g, -1), f.sin().reshape(g * g, -1)


def eva02_official_state(split):
    """A random EVA02 state dict with the names of the released MIM checkpoints."""
    C, H = EC, EHIDDEN
    sd = {}
    sd["cls_token"] = r(1, 1, C, scale=0.5)
    sd["mask_token"] = r(1, 1, C, scale=0.02)
    sd["pos_embed"] = r(1, 1 + EGRID * EGRID, C, scale=0.5)
    sd["patch_embed.proj.weight"] = r(C, 3, EPATCH, EPATCH, scale=0.03)
    sd["patch_embed.proj.bias"] = r(C, scale=0.1)
    cos, sin = official_rope(EGRID)
    sd["rope.freqs_cos"], sd["rope.freqs_sin"] = cos, sin
    for i in range(EDEPTH):
        p = f"blocks.{i}."
        sd[p + "norm1.weight"] = 1 + r(C, scale=0.2)
        sd[p + "norm1.bias"] = r(C, scale=0.1)
        if split:
            sd[p + "attn.q_proj.weight"] = r(C, C, scale=0.2)
            sd[p + "attn.k_proj.weight"] = r(C, C, scale=0.2)
            sd[p + "attn.v_proj.weight"] = r(C, C, scale=0.2)
        else:
            sd[p + "attn.qkv.weight"] = r(3 * C, C, scale=0.2)
        sd[p + "attn.q_bias"] = r(C, scale=0.1)
        sd[p + "attn.v_bias"] = r(C, scale=0.1)
        sd[p + "attn.rope.freqs_cos"], sd[p + "attn.rope.freqs_sin"] = cos, sin  # the shared module, per block
        sd[p + "attn.proj.weight"] = r(C, C, scale=0.2)
        sd[p + "attn.proj.bias"] = r(C, scale=0.1)
        sd[p + "norm2.weight"] = 1 + r(C, scale=0.2)
        sd[p + "norm2.bias"] = r(C, scale=0.1)
        if split:
            sd[p + "mlp.w1.weight"] = r(H, C, scale=0.25)
            sd[p + "mlp.w1.bias"] = r(H, scale=0.1)
            sd[p + "mlp.w2.weight"] = r(H, C, scale=0.25)
            sd[p + "mlp.w2.bias"] = r(H, scale=0.1)
            sd[p + "mlp.ffn_ln.weight"] = 1 + r(H, scale=0.2)
            sd[p + "mlp.ffn_ln.bias"] = r(H, scale=0.1)
            sd[p + "mlp.w3.weight"] = r(C, H, scale=0.06)
        else:
            sd[p + "mlp.w12.weight"] = r(2 * H, C, scale=0.25)
            sd[p + "mlp.w12.bias"] = r(2 * H, scale=0.1)
            sd[p + "mlp.w3.weight"] = r(C, H, scale=0.12)
        sd[p + "mlp.w3.bias"] = r(C, scale=0.1)
    sd["norm.weight"] = 1 + r(C, scale=0.2)
    sd["norm.bias"] = r(C, scale=0.1)
    sd["lm_head.weight"] = r(16, C, scale=0.2)
    sd["lm_head.bias"] = r(16, scale=0.1)
    return {k: (v.float() if "rope" in k else bf16_exact(v)) for k, v in sd.items()}


def eva02_resample(sd, grid_to, patch_to):
    """Rein's convert_eva2: bicubic pos grid and patch kernel (align_corners=False, no antialias);
    the RoPE buffers are rebuilt for the new grid as the official model would."""
    sd = dict(sd)
    pos = sd["pos_embed"]
    g0 = int(round((pos.shape[1] - 1) ** 0.5))
    grid = pos[:, 1:].reshape(1, g0, g0, EC).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(grid_to, grid_to), mode="bicubic", align_corners=False)
    sd["pos_embed"] = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, grid_to * grid_to, EC)], 1)
    sd["patch_embed.proj.weight"] = F.interpolate(sd["patch_embed.proj.weight"], size=(patch_to, patch_to),
                                                  mode="bicubic", align_corners=False)
    cos, sin = official_rope(grid_to)
    for k in list(sd):
        if k.endswith("rope.freqs_cos"):
            sd[k] = cos
        elif k.endswith("rope.freqs_sin"):
            sd[k] = sin
    return sd


def eva02_timm_model(split, image, patch):
    from timm.models.eva import Eva
    return Eva(img_size=image, patch_size=patch, embed_dim=EC, depth=EDEPTH, num_heads=EHEADS,
               qkv_fused=not split, mlp_ratio=4 * 2 / 3, swiglu_mlp=True, scale_mlp=split,
               use_rot_pos_emb=True, ref_feat_shape=(RoPE_REF, RoPE_REF), num_classes=0,
               norm_layer=partial(nn.LayerNorm, eps=1e-6)).eval()


def eva02_to_timm(sd, m):
    """Official -> timm names with timm's own checkpoint_filter_fn (strict load)."""
    from timm.models.eva import checkpoint_filter_fn
    conv = checkpoint_filter_fn({"model": dict(sd)}, m)
    m.load_state_dict(conv, strict=True)
    for k in ("pos_embed", "patch_embed.proj.weight"):  # no resampling happened inside timm
        assert torch.equal(conv[k], sd[k]), k
    return conv


def eva02_official_blocks(sd, split, g):
    """The EVA-02 Block / Attention / SwiGLU forward (modeling_finetune.py), from official names."""
    cos, sin = official_rope(g)

    def rotate_half(x):  # interleaved pairs
        x = x.reshape(*x.shape[:-1], -1, 2)
        return torch.stack((-x[..., 1], x[..., 0]), -1).flatten(-2)

    def rope(x):
        return x * cos + rotate_half(x) * sin

    def ln(x, p):
        return F.layer_norm(x, (x.shape[-1],), sd[p + ".weight"], sd[p + ".bias"], eps=1e-6)

    def block(i):
        p = f"blocks.{i}."

        def f(x):
            B, N, C = x.shape
            h = ln(x, p + "norm1")
            if split:
                q = F.linear(h, sd[p + "attn.q_proj.weight"], sd[p + "attn.q_bias"])
                k = F.linear(h, sd[p + "attn.k_proj.weight"])
                v = F.linear(h, sd[p + "attn.v_proj.weight"], sd[p + "attn.v_bias"])
            else:
                bias = torch.cat((sd[p + "attn.q_bias"], torch.zeros_like(sd[p + "attn.v_bias"]), sd[p + "attn.v_bias"]))
                q, k, v = F.linear(h, sd[p + "attn.qkv.weight"], bias).chunk(3, -1)
            q, k, v = (t.reshape(B, N, EHEADS, -1).permute(0, 2, 1, 3) for t in (q, k, v))
            q = torch.cat((q[:, :, :1], rope(q[:, :, 1:])), -2)
            k = torch.cat((k[:, :, :1], rope(k[:, :, 1:])), -2)
            a = ((q * EHD ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
            o = (a @ v).transpose(1, 2).reshape(B, N, -1)
            x = x + F.linear(o, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
            h = ln(x, p + "norm2")
            if split:
                hid = F.silu(F.linear(h, sd[p + "mlp.w1.weight"], sd[p + "mlp.w1.bias"])) * \
                    F.linear(h, sd[p + "mlp.w2.weight"], sd[p + "mlp.w2.bias"])
                hid = ln(hid, p + "mlp.ffn_ln")
            else:
                x1, x2 = F.linear(h, sd[p + "mlp.w12.weight"], sd[p + "mlp.w12.bias"]).chunk(2, -1)  # xformers SwiGLU
                hid = F.silu(x1) * x2
            return x + F.linear(hid, sd[p + "mlp.w3.weight"], sd[p + "mlp.w3.bias"])
        return f
    return [block(i) for i in range(EDEPTH)]


def eva02_case(name, sd, split, x, patch, grad):
    image = x.shape[-1]
    g = image // patch
    m = eva02_timm_model(split, image, patch)
    eva02_to_timm(sd, m)
    with torch.no_grad():
        tokens, rope = m._pos_embed(m.patch_embed(x))
        tokens = m.norm_pre(tokens)
    blocks = [lambda h, blk=blk: blk(h, rope=rope) for blk in m.blocks]
    outs, grads = run_blocks(tokens, blocks, grad)
    # second reference: official semantics, written out from the official names
    with torch.no_grad():
        t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
        t = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), t.flatten(2).transpose(1, 2)], 1) + sd["pos_embed"]
        check(f"{name} tokens timm vs official", tokens, t)
        # timm's RoPE table equals the official interleaved (rows | columns) cos/sin at i / g * 16
        sin_t, cos_t = rope.chunk(2, -1)
        cos_o, sin_o = official_rope(g)
        check(f"{name} rope cos", cos_t, cos_o, 1e-6)
        check(f"{name} rope sin", sin_t, sin_o, 1e-6)
        h = t
        for i, blk in enumerate(eva02_official_blocks(sd, split, g)):
            h = blk(h)
            check(f"{name} block {i} timm vs official", outs[i], h)
    save_ref(name, x, outs, grads, patch, "eva02")
    return m


# ----------------------------------------------------------------------------------------------
# CLIP
# ----------------------------------------------------------------------------------------------

def clip_openai_state():
    """A random OpenAI CLIP state dict (visual tower + a tiny text tower that must be ignored)."""
    C = CC
    sd = {}
    v = "visual."
    sd[v + "class_embedding"] = r(C, scale=0.5)
    sd[v + "positional_embedding"] = r(1 + CGRID * CGRID, C, scale=0.5)
    sd[v + "conv1.weight"] = r(C, 3, CPATCH, CPATCH, scale=0.03)
    sd[v + "ln_pre.weight"] = 1 + r(C, scale=0.2)
    sd[v + "ln_pre.bias"] = r(C, scale=0.1)
    for i in range(CDEPTH):
        p = f"{v}transformer.resblocks.{i}."
        sd[p + "attn.in_proj_weight"] = r(3 * C, C, scale=0.2)
        sd[p + "attn.in_proj_bias"] = r(3 * C, scale=0.1)
        sd[p + "attn.out_proj.weight"] = r(C, C, scale=0.2)
        sd[p + "attn.out_proj.bias"] = r(C, scale=0.1)
        sd[p + "ln_1.weight"] = 1 + r(C, scale=0.2)
        sd[p + "ln_1.bias"] = r(C, scale=0.1)
        sd[p + "mlp.c_fc.weight"] = r(CHIDDEN, C, scale=0.25)
        sd[p + "mlp.c_fc.bias"] = r(CHIDDEN, scale=0.1)
        sd[p + "mlp.c_proj.weight"] = r(C, CHIDDEN, scale=0.1)
        sd[p + "mlp.c_proj.bias"] = r(C, scale=0.1)
        sd[p + "ln_2.weight"] = 1 + r(C, scale=0.2)
        sd[p + "ln_2.bias"] = r(C, scale=0.1)
    sd[v + "ln_post.weight"] = 1 + r(C, scale=0.2)
    sd[v + "ln_post.bias"] = r(C, scale=0.1)
    sd[v + "proj"] = r(C, PROJ, scale=0.2)
    # text tower
    sd["positional_embedding"] = r(TCTX, TC, scale=0.1)
    sd["token_embedding.weight"] = r(TVOCAB, TC, scale=0.1)
    p = "transformer.resblocks.0."
    sd[p + "attn.in_proj_weight"] = r(3 * TC, TC, scale=0.2)
    sd[p + "attn.in_proj_bias"] = r(3 * TC, scale=0.1)
    sd[p + "attn.out_proj.weight"] = r(TC, TC, scale=0.2)
    sd[p + "attn.out_proj.bias"] = r(TC, scale=0.1)
    sd[p + "ln_1.weight"] = 1 + r(TC, scale=0.2)
    sd[p + "ln_1.bias"] = r(TC, scale=0.1)
    sd[p + "mlp.c_fc.weight"] = r(4 * TC, TC, scale=0.2)
    sd[p + "mlp.c_fc.bias"] = r(4 * TC, scale=0.1)
    sd[p + "mlp.c_proj.weight"] = r(TC, 4 * TC, scale=0.1)
    sd[p + "mlp.c_proj.bias"] = r(TC, scale=0.1)
    sd[p + "ln_2.weight"] = 1 + r(TC, scale=0.2)
    sd[p + "ln_2.bias"] = r(TC, scale=0.1)
    sd["ln_final.weight"] = 1 + r(TC, scale=0.2)
    sd["ln_final.bias"] = r(TC, scale=0.1)
    sd["text_projection"] = r(TC, PROJ, scale=0.2)
    sd["logit_scale"] = torch.tensor(4.605)
    return {k: bf16_exact(v) for k, v in sd.items()}


def clip_resample_pos(sd, grid_to, mode):
    sd = dict(sd)
    pos = sd["visual.positional_embedding"]
    g0 = int(round((pos.shape[0] - 1) ** 0.5))
    grid = pos[1:].reshape(1, g0, g0, CC).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(grid_to, grid_to), mode=mode, align_corners=False)
    sd["visual.positional_embedding"] = torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(grid_to * grid_to, CC)], 0)
    return sd


def clip_to_hf(sd):
    """OpenAI -> transformers CLIPModel names."""
    C, out_ = CC, {}
    for k, v in sd.items():
        if k.startswith("visual."):
            k2, pre = k[len("visual."):], "vision_model."
            width = C
        else:
            k2, pre = k, "text_model."
            width = TC
        if k2.startswith("transformer.resblocks."):
            i, rest = k2[len("transformer.resblocks."):].split(".", 1)
            p = f"{pre}encoder.layers.{i}."
            if rest.startswith("attn.in_proj_"):
                kind = "weight" if rest.endswith("weight") else "bias"
                for j, part in enumerate(["q_proj", "k_proj", "v_proj"]):
                    out_[p + f"self_attn.{part}.{kind}"] = v[j * width:(j + 1) * width].clone()
                continue
            rest = (rest.replace("attn.out_proj.", "self_attn.out_proj.").replace("ln_1.", "layer_norm1.")
                    .replace("ln_2.", "layer_norm2.").replace("mlp.c_fc.", "mlp.fc1.").replace("mlp.c_proj.", "mlp.fc2."))
            out_[p + rest] = v
            continue
        name = {"class_embedding": "vision_model.embeddings.class_embedding",
                "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
                "ln_pre.weight": "vision_model.pre_layrnorm.weight", "ln_pre.bias": "vision_model.pre_layrnorm.bias",
                "ln_post.weight": "vision_model.post_layernorm.weight",
                "ln_post.bias": "vision_model.post_layernorm.bias",
                "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
                "ln_final.weight": "text_model.final_layer_norm.weight",
                "ln_final.bias": "text_model.final_layer_norm.bias"}.get(k2)
        if k == "visual.positional_embedding":
            name = "vision_model.embeddings.position_embedding.weight"
        elif k == "positional_embedding":
            name = "text_model.embeddings.position_embedding.weight"
        elif k == "visual.proj":
            name, v = "visual_projection.weight", v.t().contiguous()
        elif k == "text_projection":
            name, v = "text_projection.weight", v.t().contiguous()
        elif k == "logit_scale":
            name = "logit_scale"
        assert name is not None, k
        out_[name] = v
    return out_


def clip_hf_model(image):
    from transformers import CLIPConfig, CLIPModel
    vc = dict(hidden_size=CC, intermediate_size=CHIDDEN, num_attention_heads=CHEADS, num_hidden_layers=CDEPTH,
              image_size=image, patch_size=CPATCH, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=PROJ)
    tc = dict(hidden_size=TC, intermediate_size=4 * TC, num_attention_heads=2, num_hidden_layers=1,
              vocab_size=TVOCAB, max_position_embeddings=TCTX, projection_dim=PROJ, hidden_act="quick_gelu",
              bos_token_id=0, eos_token_id=1, pad_token_id=1)
    cfg = CLIPConfig(text_config=tc, vision_config=vc, projection_dim=PROJ)
    cfg._attn_implementation = "eager"
    return CLIPModel(cfg).eval()


def clip_openai_blocks(sd):
    """OpenAI CLIP ResidualAttentionBlock (nn.MultiheadAttention, sequence-first, QuickGELU)."""
    blocks = []
    for i in range(CDEPTH):
        p = f"visual.transformer.resblocks.{i}."
        mha = nn.MultiheadAttention(CC, CHEADS)
        mha.load_state_dict({"in_proj_weight": sd[p + "attn.in_proj_weight"], "in_proj_bias": sd[p + "attn.in_proj_bias"],
                             "out_proj.weight": sd[p + "attn.out_proj.weight"],
                             "out_proj.bias": sd[p + "attn.out_proj.bias"]})
        mha.eval()

        def f(x, p=p, mha=mha):
            x = x.permute(1, 0, 2)  # NLD -> LND
            ln = lambda t, n: F.layer_norm(t, (CC,), sd[p + n + ".weight"], sd[p + n + ".bias"], eps=1e-5)
            h = ln(x, "ln_1")
            x = x + mha(h, h, h, need_weights=False)[0]
            h = F.linear(ln(x, "ln_2"), sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])
            h = h * torch.sigmoid(1.702 * h)
            x = x + F.linear(h, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
            return x.permute(1, 0, 2)
        blocks.append(f)
    return blocks


def clip_to_timm(sd, image):
    from timm.models.vision_transformer import _convert_openai_clip
    m = timm.create_model("vit_base_patch16_clip_quickgelu_224", pretrained=False, embed_dim=CC, depth=CDEPTH,
                          num_heads=CHEADS, mlp_ratio=CHIDDEN / CC, img_size=image, patch_size=CPATCH,
                          num_classes=0).eval()
    conv = {k: v for k, v in _convert_openai_clip(dict(sd), m).items() if not k.startswith("head.")}
    m.load_state_dict(conv, strict=True)
    return m, conv


def clip_case(name, sd, x, grad):
    image = x.shape[-1]
    hf = clip_hf_model(image)
    hf.load_state_dict(clip_to_hf(sd), strict=True)
    vm = hf.vision_model
    with torch.no_grad():
        tokens = vm.pre_layrnorm(vm.embeddings(x))
    blocks = [lambda h, layer=layer: _first(layer(h, None)) for layer in vm.encoder.layers]
    outs, grads = run_blocks(tokens, blocks, grad)
    with torch.no_grad():
        # second reference: OpenAI VisionTransformer.forward, hand-written from the OpenAI names
        t = F.conv2d(x, sd["visual.conv1.weight"], stride=CPATCH).flatten(2).transpose(1, 2)
        t = torch.cat([sd["visual.class_embedding"].expand(x.shape[0], 1, -1), t], 1) + sd["visual.positional_embedding"]
        t = F.layer_norm(t, (CC,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"], eps=1e-5)
        check(f"{name} tokens hf vs openai", tokens, t)
        h = t
        for i, blk in enumerate(clip_openai_blocks(sd)):
            h = blk(h)
            check(f"{name} block {i} hf vs openai", outs[i], h)
        # third: timm
        tm, _ = clip_to_timm(sd, image)
        h = tm.norm_pre(tm._pos_embed(tm.patch_embed(x)))
        check(f"{name} tokens hf vs timm", tokens, h)
        for i, blk in enumerate(tm.blocks):
            h = blk(h)
            check(f"{name} block {i} hf vs timm", outs[i], h)
        # transformers' own full forward agrees with the per-layer loop
        hs = vm(pixel_values=x, output_hidden_states=True).hidden_states
        for i in range(CDEPTH):
            check(f"{name} hidden_states[{i + 1}]", outs[i], hs[i + 1], 1e-6)
    save_ref(name, x, outs, grads, CPATCH, "clip")
    return hf


def _first(o):
    return o[0] if isinstance(o, tuple) else o


def images56():
    """The two 56x56 PNGs of make_fixtures.py, normalised (ImageNet mean/std)."""
    batch = []
    for n in range(2):
        rgb = np.asarray(Image.open(os.path.join(HERE, f"img{n}.png")).convert("RGB"), dtype=np.float32)
        batch.append(((rgb - MEAN) / STD).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(batch))


def normalised_noise(b, size):
    """Random 8-bit images, ImageNet-normalised."""
    rgb = np.random.randint(0, 256, (b, size, size, 3)).astype(np.float32)
    return torch.from_numpy(((rgb - MEAN) / STD).transpose(0, 3, 1, 2).copy())


def main():
    # ---------------- EVA02 ----------------
    print("EVA02: hidden", EHIDDEN)
    fused = eva02_official_state(split=False)
    m = eva02_case("eva02_fused_56", fused, False, images56()[:1], EPATCH, False)
    torch.save({"model": fused}, out("eva02_fused.pth"))
    save_file(cast(m.state_dict(), torch.float16), out("eva02_fused_timm.safetensors"))

    split = eva02_official_state(split=True)
    m = eva02_case("eva02_split_56", split, True, images56(), EPATCH, True)
    torch.save({"module": cast(split, torch.bfloat16)}, out("eva02_split.pth"))
    save_file(cast(m.state_dict(), torch.float32), out("eva02_split_timm.safetensors"))
    torch.save({"backbone." + k: v.half() for k, v in split.items()}, out("eva02_split_rein.pth"))
    eva02_case("eva02_split_p16_80", eva02_resample(split, 5, 16), True, normalised_noise(1, 80), 16, False)

    # ---------------- CLIP ----------------
    print("CLIP")
    clip = clip_openai_state()
    hf = clip_case("clip_64", clip, normalised_noise(2, 64), True)
    clip_case("clip_80", clip_resample_pos(clip, 5, "bicubic"), normalised_noise(1, 80), False)
    clip_case("clip_80_bilinear", clip_resample_pos(clip, 5, "bilinear"), normalised_noise(1, 80), False)

    torch.save(cast(clip, torch.float16), out("clip_openai.pth"))  # OpenAI releases float16
    hf_sd = {k: v for k, v in hf.state_dict().items()}
    assert all(torch.equal(hf_sd[k], v) for k, v in clip_to_hf(clip).items())
    hf_file = dict(hf_sd)
    # older hub files (converted from pytorch_model.bin) still carry the int64 position_ids buffer
    hf_file["vision_model.embeddings.position_ids"] = torch.arange(1 + CGRID * CGRID)[None]
    save_file({k: (v if v.dtype == torch.int64 else v.float()).contiguous() for k, v in hf_file.items()},
              out("clip_hf.safetensors"))
    vision = {k[len("vision_model."):]: v for k, v in hf_sd.items() if k.startswith("vision_model.")}
    from transformers import CLIPVisionModel
    vm = CLIPVisionModel(hf.config.vision_config)
    vm.load_state_dict(vision, strict=True)  # transformers 5 CLIPVisionModel names carry no prefix
    assert set(vm.state_dict()) == set(vision)
    save_file(cast(vision, torch.bfloat16), out("clip_hf_vision.safetensors"))
    _, timm_sd = clip_to_timm(clip, 64)
    save_file(cast(timm_sd, torch.float16), out("clip_timm.safetensors"))

    sizes = {f: os.path.getsize(os.path.join(HERE, f)) for f in new_files}
    print(json.dumps({"files": sizes, "bytes": sum(sizes.values())}, indent=1))


if __name__ == "__main__":
    main()
