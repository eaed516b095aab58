"""PyTorch reference for multi-scale deformable attention (HeadsTests/DeformableAttentionTests).

Re-run from the repository root:  python3 Tests/HeadsTests/make_deformable_fixture.py
Writes Tests/HeadsTests/Fixtures/deformable_attention.json (float64 reference values).

The core follows mmcv's `multi_scale_deformable_attn_pytorch` (grid_sample, bilinear,
zeros padding, align_corners=False); the module follows mmcv's MultiScaleDeformableAttention
forward without the residual/dropout. Gradients come from autograd of L = Σ out ⊙ R.
"""
import json, os
import torch
import torch.nn.functional as F

torch.manual_seed(0)
dt = torch.float64


def core(value, shapes, loc, w):
    bs, _, nh, d = value.shape
    _, nq, _, L, P, _ = loc.shape
    splits = value.split([h * ww for h, ww in shapes], dim=1)
    grids = 2 * loc - 1
    outs = []
    for l, (h, ww) in enumerate(shapes):
        v = splits[l].flatten(2).transpose(1, 2).reshape(bs * nh, d, h, ww)
        g = grids[:, :, :, l].transpose(1, 2).flatten(0, 1)
        outs.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    aw = w.transpose(1, 2).reshape(bs * nh, 1, nq, L * P)
    out = (torch.stack(outs, dim=-2).flatten(-2) * aw).sum(-1).view(bs, nh * d, nq)
    return out.transpose(1, 2).contiguous()


def flat(t):
    return {"shape": list(t.shape), "values": [float(x) for x in t.detach().reshape(-1).tolist()]}


fx = {}
# --- core
shapes = [(3, 4), (2, 3)]
B, NH, D, Q, L, P = 2, 2, 3, 5, 2, 3
S = sum(h * w for h, w in shapes)
value = torch.randn(B, S, NH, D, dtype=dt, requires_grad=True)
loc = (torch.rand(B, Q, NH, L, P, 2, dtype=dt) * 1.4 - 0.2).requires_grad_(True)
w = torch.rand(B, Q, NH, L, P, dtype=dt, requires_grad=True)
out = core(value, shapes, loc, w)
R = torch.randn_like(out)
(out * R).sum().backward()
fx["core"] = {"shapes": shapes, "value": flat(value), "locations": flat(loc), "weights": flat(w), "R": flat(R),
              "out": flat(out), "dvalue": flat(value.grad), "dlocations": flat(loc.grad), "dweights": flat(w.grad)}

# --- module (mmcv MultiScaleDeformableAttention, no residual)
C, NH, L, P = 8, 2, 2, 2
shapes = [(4, 5), (2, 3)]
S = sum(h * w for h, w in shapes)
B, Q = 2, 4
params = {
    "value_proj.weight": torch.randn(C, C, dtype=dt) * 0.4, "value_proj.bias": torch.randn(C, dtype=dt) * 0.1,
    "sampling_offsets.weight": torch.randn(NH * L * P * 2, C, dtype=dt) * 0.3,
    "sampling_offsets.bias": torch.randn(NH * L * P * 2, dtype=dt),
    "attention_weights.weight": torch.randn(NH * L * P, C, dtype=dt) * 0.4,
    "attention_weights.bias": torch.randn(NH * L * P, dtype=dt) * 0.1,
    "output_proj.weight": torch.randn(C, C, dtype=dt) * 0.4, "output_proj.bias": torch.randn(C, dtype=dt) * 0.1,
}
for p in params.values():
    p.requires_grad_(True)
query = torch.randn(B, Q, C, dtype=dt, requires_grad=True)
val_in = torch.randn(B, S, C, dtype=dt, requires_grad=True)
ref = torch.rand(B, Q, L, 2, dtype=dt)
v = F.linear(val_in, params["value_proj.weight"], params["value_proj.bias"]).view(B, S, NH, C // NH)
off = F.linear(query, params["sampling_offsets.weight"], params["sampling_offsets.bias"]).view(B, Q, NH, L, P, 2)
aw = F.linear(query, params["attention_weights.weight"], params["attention_weights.bias"]).view(B, Q, NH, L * P)
aw = aw.softmax(-1).view(B, Q, NH, L, P)
norm = torch.tensor([[w_, h_] for h_, w_ in shapes], dtype=dt)
locm = ref[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]
o = core(v, shapes, locm, aw)
o = F.linear(o, params["output_proj.weight"], params["output_proj.bias"])
R = torch.randn_like(o)
(o * R).sum().backward()
fx["module"] = {"shapes": shapes, "channels": C, "heads": NH, "levels": L, "points": P,
                "query": flat(query), "value": flat(val_in), "reference": flat(ref), "R": flat(R), "out": flat(o),
                "dquery": flat(query.grad), "dvalue": flat(val_in.grad),
                "params": {k: flat(p) for k, p in params.items()},
                "grads": {k: flat(p.grad) for k, p in params.items()}}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "deformable_attention.json")
with open(path, "w") as f:
    json.dump(fx, f)
print("wrote", path, os.path.getsize(path), "bytes")
