"""PyTorch reference for Mask2Former's decoder pieces (HeadsTests/DecoderLayerTests).

Re-run from the repository root:  python3 Tests/HeadsTests/make_decoder_fixture.py
Writes Tests/HeadsTests/Fixtures/decoder_layer.json.

* masked multi-head attention: torch.nn.MultiheadAttention(batch_first=True) with a boolean
  attn_mask (True = not allowed) repeated over heads, as mmdet's Mask2Former decoder passes it;
* one decoder layer, post-norm: cross_attn → LN → self_attn → LN → FFN(ReLU) → LN (mmdet
  Mask2FormerTransformerDecoderLayer), gradients w.r.t. query, query_pos, memory and parameters;
* mmdet SinePositionalEncoding(num_feats=F, normalize=True) on an unpadded map.
"""
import json, math, os
import torch
import torch.nn as nn

torch.manual_seed(2)
dt = torch.float64


def flat(t):
    return {"shape": list(t.shape), "values": [float(x) for x in t.detach().reshape(-1).tolist()]}


def randomize(m, s=0.3):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * s)


B, Q, S, C, NH, FF = 2, 5, 7, 8, 2, 16
fx = {"B": B, "Q": Q, "S": S, "C": C, "heads": NH, "ffn": FF}

# --- masked attention
mha = nn.MultiheadAttention(C, NH, batch_first=True).double()
randomize(mha)
q = torch.randn(B, Q, C, dtype=dt, requires_grad=True)
k = torch.randn(B, S, C, dtype=dt, requires_grad=True)
v = torch.randn(B, S, C, dtype=dt, requires_grad=True)
mask = torch.rand(B, Q, S) < 0.5
mask[0, 1, :] = False           # an unmasked row
mask[1, 2, :] = True
mask[1, 2, 3] = False           # a row with one allowed key
out = mha(q, k, v, attn_mask=mask.repeat_interleave(NH, dim=0), need_weights=False)[0]
R = torch.randn_like(out)
(out * R).sum().backward()
fx["attention"] = {"mask": mask.reshape(-1).tolist(), "query": flat(q), "key": flat(k), "value": flat(v), "R": flat(R),
                   "out": flat(out), "dquery": flat(q.grad), "dkey": flat(k.grad), "dvalue": flat(v.grad),
                   "params": {n: flat(p) for n, p in mha.named_parameters()},
                   "grads": {n: flat(p.grad) for n, p in mha.named_parameters()}}

# --- decoder layer
ca = nn.MultiheadAttention(C, NH, batch_first=True).double()
sa = nn.MultiheadAttention(C, NH, batch_first=True).double()
fc1, fc2 = nn.Linear(C, FF).double(), nn.Linear(FF, C).double()
norms = [nn.LayerNorm(C).double() for _ in range(3)]
mods = {"cross_attn.attn.": ca, "self_attn.attn.": sa, "ffn.layers.0.0.": fc1, "ffn.layers.1.": fc2,
        "norms.0.": norms[0], "norms.1.": norms[1], "norms.2.": norms[2]}
for m in mods.values():
    randomize(m)
for n in norms:
    with torch.no_grad():
        n.weight.add_(1.0)
x = torch.randn(B, Q, C, dtype=dt, requires_grad=True)
p = torch.randn(Q, C, dtype=dt, requires_grad=True)
mem = torch.randn(B, S, C, dtype=dt, requires_grad=True)
mpos = torch.randn(S, C, dtype=dt)
am = mask.repeat_interleave(NH, dim=0)
x1 = norms[0](x + ca(x + p, mem + mpos, mem, attn_mask=am, need_weights=False)[0])
x2 = norms[1](x1 + sa(x1 + p, x1 + p, x1, need_weights=False)[0])
x3 = norms[2](x2 + fc2(torch.relu(fc1(x2))))
R = torch.randn_like(x3)
(x3 * R).sum().backward()
params, grads = {}, {}
for pre, m in mods.items():
    for n, t in m.named_parameters():
        params[pre + n] = flat(t)
        grads[pre + n] = flat(t.grad)
fx["layer"] = {"query": flat(x), "query_pos": flat(p), "memory": flat(mem), "memory_pos": flat(mpos), "R": flat(R),
               "out": flat(x3), "dquery": flat(x.grad), "dquery_pos": flat(p.grad), "dmemory": flat(mem.grad),
               "params": params, "grads": grads}

# --- sine positional encoding (mmdet, normalize=True, scale 2π, eps 1e-6, temperature 10000)
H, W, F_ = 3, 5, 6
not_mask = torch.ones(1, H, W, dtype=dt)
y_embed = not_mask.cumsum(1)
x_embed = not_mask.cumsum(2)
y_embed = y_embed / (y_embed[:, -1:, :] + 1e-6) * 2 * math.pi
x_embed = x_embed / (x_embed[:, :, -1:] + 1e-6) * 2 * math.pi
dim_t = torch.arange(F_, dtype=dt)
dim_t = 10000 ** (2 * (dim_t // 2) / F_)
pos_x = x_embed[:, :, :, None] / dim_t
pos_y = y_embed[:, :, :, None] / dim_t
pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).view(1, H, W, -1)
pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).view(1, H, W, -1)
pos = torch.cat((pos_y, pos_x), dim=3)[0].reshape(H * W, 2 * F_)
fx["sine"] = {"H": H, "W": W, "F": F_, "tokens": flat(pos)}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "decoder_layer.json")
with open(path, "w") as f:
    json.dump(fx, f)
print("wrote", path, os.path.getsize(path), "bytes")
