"""PyTorch reference of the whole Mask2Former head (HeadsTests/Mask2FormerHeadTests): forward
(all predictions), the deep-supervised loss, the gradients of every parameter, of the four
feature maps and of the PEFT tokens, and the semantic inference.

Re-run from the repository root:  python3 Tests/HeadsTests/make_head_fixture.py
Writes Tests/HeadsTests/Fixtures/mask2former_head.json (float64 reference values).

Written functionally after mmdet's MSDeformAttnPixelDecoder / Mask2FormerTransformerDecoder /
Mask2FormerHead, mmseg's Mask2FormerHead (targets, predict) and Rein's ReinMask2FormerHead
(token → query link, querys2feat) — small sizes (D 16, GN 4 groups, 2 heads, 2 points, 2 encoder
and 3 decoder layers, 5 queries) so the fixture stays small; the random points of the loss are
drawn here and stored.
"""
import json, math, os
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

torch.manual_seed(3)
dt = torch.float64
B, CIN, CB, LT, Q, K = 2, 8, 12, 3, 5, 3
D, G, NH, NP, ENC, DEC, FFE, FFD = 16, 4, 2, 2, 2, 3, 32, 32
sizes = [(16, 16), (8, 8), (4, 4), (2, 2)]       # strides 4, 8, 16, 32
IMG = (64, 64)
PM, PTS = 60, 40
P = {}


def param(name, *shape, scale=0.3, offset=0.0):
    P[name] = (torch.randn(*shape, dtype=dt) * scale + offset).requires_grad_(True)


def lin(pre, i, o):
    param(pre + "weight", o, i); param(pre + "bias", o, scale=0.1)


def norm(pre, c):
    param(pre + "weight", c, scale=0.1, offset=1.0); param(pre + "bias", c, scale=0.1)


lin("link.transform.", CB, D); lin("link.merge.", 3 * D, D); lin("querys2feat.", D, D)
for l in range(3):
    param(f"pixel_decoder.input_convs.{l}.conv.weight", D, CIN, 1, 1); param(f"pixel_decoder.input_convs.{l}.conv.bias", D)
    norm(f"pixel_decoder.input_convs.{l}.gn.", D)
for k in range(ENC):
    pre = f"pixel_decoder.encoder.layers.{k}."
    lin(pre + "self_attn.value_proj.", D, D)
    lin(pre + "self_attn.sampling_offsets.", D, NH * 3 * NP * 2)
    with torch.no_grad():
        P[pre + "self_attn.sampling_offsets.bias"].mul_(5)
    lin(pre + "self_attn.attention_weights.", D, NH * 3 * NP)
    lin(pre + "self_attn.output_proj.", D, D)
    lin(pre + "ffn.layers.0.0.", D, FFE); lin(pre + "ffn.layers.1.", FFE, D)
    norm(pre + "norms.0.", D); norm(pre + "norms.1.", D)
param("pixel_decoder.level_encoding.weight", 3, D, scale=1.0)
param("pixel_decoder.lateral_convs.0.conv.weight", D, CIN, 1, 1); norm("pixel_decoder.lateral_convs.0.gn.", D)
param("pixel_decoder.output_convs.0.conv.weight", D, D, 3, 3, scale=0.15); norm("pixel_decoder.output_convs.0.gn.", D)
param("pixel_decoder.mask_feature.weight", D, D, 1, 1); param("pixel_decoder.mask_feature.bias", D, scale=0.1)
for i in range(DEC):
    pre = f"transformer_decoder.layers.{i}."
    for a in ["cross_attn.attn.", "self_attn.attn."]:
        param(pre + a + "in_proj_weight", 3 * D, D); param(pre + a + "in_proj_bias", 3 * D, scale=0.1)
        lin(pre + a + "out_proj.", D, D)
    lin(pre + "ffn.layers.0.0.", D, FFD); lin(pre + "ffn.layers.1.", FFD, D)
    for j in range(3):
        norm(pre + f"norms.{j}.", D)
norm("transformer_decoder.post_norm.", D)
param("level_embed.weight", 3, D, scale=1.0)
lin("cls_embed.", D, K + 1)
for j in (0, 2, 4):
    lin(f"mask_embed.{j}.", D, D)


def linear(x, pre):
    return F.linear(x, P[pre + "weight"], P[pre + "bias"])


def ln(x, pre):
    return F.layer_norm(x, (D,), P[pre + "weight"], P[pre + "bias"], eps=1e-5)


def conv_norm(x, pre, relu, k):
    y = F.conv2d(x, P[pre + "conv.weight"], P.get(pre + "conv.bias"), padding=k // 2)
    y = F.group_norm(y, G, P[pre + "gn.weight"], P[pre + "gn.bias"], eps=1e-5)
    return F.relu(y) if relu else y


def sine(h, w, nf):
    y = torch.arange(1, h + 1, dtype=dt)[:, None].expand(h, w) / (h + 1e-6) * 2 * math.pi
    x = torch.arange(1, w + 1, dtype=dt)[None, :].expand(h, w) / (w + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(nf, dtype=dt) // 2) / nf)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=3).view(h, w, -1)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=3).view(h, w, -1)
    return torch.cat((py, px), dim=2).reshape(h * w, 2 * nf)


def msda_core(value, shapes, loc, w):
    bs, _, nh, d = value.shape
    _, nq, _, L, Pp, _ = loc.shape
    splits = value.split([h * ww for h, ww in shapes], dim=1)
    grids = 2 * loc - 1
    outs = []
    for l, (h, ww) in enumerate(shapes):
        v = splits[l].flatten(2).transpose(1, 2).reshape(bs * nh, d, h, ww)
        g = grids[:, :, :, l].transpose(1, 2).flatten(0, 1)
        outs.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    aw = w.transpose(1, 2).reshape(bs * nh, 1, nq, L * Pp)
    return (torch.stack(outs, dim=-2).flatten(-2) * aw).sum(-1).view(bs, nh * d, nq).transpose(1, 2)


def msda(q, x, ref, shapes, pre):
    bs, nq, _ = q.shape
    v = linear(x, pre + "value_proj.").view(bs, -1, NH, D // NH)
    off = linear(q, pre + "sampling_offsets.").view(bs, nq, NH, 3, NP, 2)
    aw = linear(q, pre + "attention_weights.").view(bs, nq, NH, 3 * NP).softmax(-1).view(bs, nq, NH, 3, NP)
    normz = torch.tensor([[w, h] for h, w in shapes], dtype=dt)
    loc = ref[:, :, None, :, None, :] + off / normz[None, None, None, :, None, :]
    return linear(msda_core(v, shapes, loc, aw), pre + "output_proj.")


def mha(q, k, v, mask, pre):
    W, b = P[pre + "in_proj_weight"], P[pre + "in_proj_bias"]
    qq = F.linear(q, W[:D], b[:D]); kk = F.linear(k, W[D:2 * D], b[D:2 * D]); vv = F.linear(v, W[2 * D:], b[2 * D:])
    bs, nq, _ = qq.shape
    ns = kk.shape[1]
    qh = qq.view(bs, nq, NH, -1).transpose(1, 2); kh = kk.view(bs, ns, NH, -1).transpose(1, 2)
    vh = vv.view(bs, ns, NH, -1).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(D // NH)
    if mask is not None:
        s = s.masked_fill(mask[:, None], float("-inf"))
    y = (s.softmax(-1) @ vh).transpose(1, 2).reshape(bs, nq, D)
    return linear(y, pre + "out_proj.")


def ffn(x, pre):
    return linear(F.relu(linear(x, pre + "layers.0.0.")), pre + "layers.1.")


feats = [torch.randn(B, CIN, h, w, dtype=dt, requires_grad=True) for h, w in sizes]
tokens = torch.randn(LT, Q, CB, dtype=dt, requires_grad=True)

# --- pixel decoder
shapes = [sizes[3], sizes[2], sizes[1]]
zs = [conv_norm(feats[3 - l], f"pixel_decoder.input_convs.{l}.", False, 1) for l in range(3)]
x = torch.cat([z.flatten(2).transpose(1, 2) for z in zs], 1)
pos = torch.cat([sine(h, w, D // 2) + P["pixel_decoder.level_encoding.weight"][l] for l, (h, w) in enumerate(shapes)], 0)
refs = []
for h, w in shapes:
    ry, rx = torch.meshgrid((torch.arange(h, dtype=dt) + 0.5) / h, (torch.arange(w, dtype=dt) + 0.5) / w, indexing="ij")
    refs.append(torch.stack([rx.reshape(-1), ry.reshape(-1)], -1))
ref = torch.cat(refs, 0)[None, :, None].repeat(B, 1, 3, 1)
for k in range(ENC):
    pre = f"pixel_decoder.encoder.layers.{k}."
    x = ln(x + msda(x + pos, x, ref, shapes, pre + "self_attn."), pre + "norms.0.")
    x = ln(x + ffn(x, pre + "ffn."), pre + "norms.1.")
memory = x
starts = [0, shapes[0][0] * shapes[0][1], shapes[0][0] * shapes[0][1] + shapes[1][0] * shapes[1][1]]
mems = [memory[:, starts[l]:starts[l] + h * w] for l, (h, w) in enumerate(shapes)]
m8 = mems[2].transpose(1, 2).reshape(B, D, *shapes[2])
y = conv_norm(feats[0], "pixel_decoder.lateral_convs.0.", False, 1) + F.interpolate(m8, size=sizes[0], mode="bilinear", align_corners=False)
mf = F.conv2d(conv_norm(y, "pixel_decoder.output_convs.0.", True, 3), P["pixel_decoder.mask_feature.weight"], P["pixel_decoder.mask_feature.bias"])

# --- token → query link, transformer decoder
U = linear(tokens, "link.transform.").permute(1, 2, 0)
V = torch.cat([F.max_pool1d(U, kernel_size=LT), F.avg_pool1d(U, kernel_size=LT), U[:, :, -1:]], dim=-1).flatten(-2)
qpos = linear(V, "link.merge.")
xq = linear(qpos, "querys2feat.").unsqueeze(0).repeat(B, 1, 1)
inputs = [mems[l] + P["level_embed.weight"][l] for l in range(3)]
poses = [sine(h, w, D // 2) for h, w in shapes]


def pred(xq, l):
    yq = ln(xq, "transformer_decoder.post_norm.")
    cls = linear(yq, "cls_embed.")
    e = linear(F.relu(linear(F.relu(linear(yq, "mask_embed.0.")), "mask_embed.2.")), "mask_embed.4.")
    mask = torch.einsum("bqc,bchw->bqhw", e, mf)
    am = F.interpolate(mask, size=shapes[l], mode="bilinear", align_corners=False).flatten(2)
    am = (am.sigmoid() < 0.5).detach()
    return cls, mask, am


preds = []
cls, mask, am = pred(xq, 0)
preds.append((cls, mask))
for i in range(DEC):
    l = i % 3
    am = am & ~(am.sum(-1, keepdim=True) == am.shape[-1])
    pre = f"transformer_decoder.layers.{i}."
    xq = ln(xq + mha(xq + qpos, inputs[l] + poses[l], inputs[l], am, pre + "cross_attn.attn."), pre + "norms.0.")
    xq = ln(xq + mha(xq + qpos, xq + qpos, xq, None, pre + "self_attn.attn."), pre + "norms.1.")
    xq = ln(xq + ffn(xq, pre + "ffn."), pre + "norms.2.")
    cls, mask, am = pred(xq, (i + 1) % 3)
    preds.append((cls, mask))

# --- targets and loss (mmdet semantics, see make_loss_fixture.py)
labels = torch.randint(0, K, (B, *IMG))
labels[0, :10] = 255
labels[1][labels[1] == 1] = 2
targets = []
for b in range(B):
    classes = [c for c in range(K) if (labels[b] == c).any()]
    targets.append((classes, torch.stack([(labels[b] == c).to(dt) for c in classes])))
NMASK = sum(len(c) for c, _ in targets)


def point_sample(maps, pts):
    return F.grid_sample(maps[:, None], 2 * pts[:, None] - 1, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0, 0]


def criterion(cls, masks):
    cls_t = torch.full((B, Q), K, dtype=torch.long)
    pairs, matching, assign = [], [], []
    for b in range(B):
        classes, gt = targets[b]
        pts = torch.rand(1, PM, 2, dtype=dt)
        matching.append(pts)
        with torch.no_grad():
            x = point_sample(masks[b], pts.repeat(Q, 1, 1))
            t = point_sample(gt, pts.repeat(len(classes), 1, 1))
            pos = F.binary_cross_entropy_with_logits(x, torch.ones_like(x), reduction="none")
            neg = F.binary_cross_entropy_with_logits(x, torch.zeros_like(x), reduction="none")
            s = x.sigmoid()
            cost = (2 * -cls[b].softmax(-1)[:, classes]
                    + 5 * (pos @ t.T + neg @ (1 - t).T) / PM
                    + 5 * (1 - (2 * s @ t.T + 1) / (s.sum(-1)[:, None] + t.sum(-1)[None, :] + 1)))
        rows, cols = linear_sum_assignment(cost.numpy())
        a = [0] * len(classes)
        for r, c in zip(rows, cols):
            a[c] = int(r); cls_t[b, r] = classes[c]
        assign.append(a)
        pairs += sorted([(b, int(r), int(c)) for r, c in zip(rows, cols)], key=lambda p: p[1])
    cw = torch.ones(K + 1, dtype=dt); cw[K] = 0.1
    lc = 2 * F.cross_entropy(cls.reshape(-1, K + 1), cls_t.reshape(-1), weight=cw, reduction="sum") / cw[cls_t.reshape(-1)].sum()
    M = max(NMASK, 1)
    pr = torch.stack([masks[b, q] for b, q, g in pairs])
    tg = torch.stack([targets[b][1][g] for b, q, g in pairs])
    k_unc = int(0.75 * PTS)
    cand = torch.rand(len(pairs), 3 * PTS, 2, dtype=dt)
    fresh = torch.rand(len(pairs), PTS - k_unc, 2, dtype=dt)
    with torch.no_grad():
        idx = (-point_sample(pr, cand).abs()).topk(k_unc, dim=1)[1]
        pts = torch.cat([torch.gather(cand, 1, idx[..., None].expand(-1, -1, 2)), fresh], 1)
    xp, tp = point_sample(pr, pts), point_sample(tg, pts)
    lm = 5 * F.binary_cross_entropy_with_logits(xp.reshape(-1), tp.reshape(-1), reduction="sum") / (M * PTS)
    sp = xp.sigmoid()
    ld = 5 * (1 - (2 * (sp * tp).sum(1) + 1) / (sp.sum(1) + tp.sum(1) + 1)).sum() / M
    return lc, lm, ld, {"matching": [flat(m) for m in matching], "candidates": flat(cand), "fresh": flat(fresh), "assignments": assign}


def flat(t):
    t = torch.as_tensor(t)
    return {"shape": list(t.shape), "values": [float(f"{v:.8g}") for v in t.detach().reshape(-1).tolist()]}


total = [0.0, 0.0, 0.0]
points = []
loss = 0
for cls, masks in preds:
    lc, lm, ld, pts = criterion(cls, masks)
    loss = loss + lc + lm + ld
    total = [total[0] + float(lc), total[1] + float(lm), total[2] + float(ld)]
    points.append(pts)
loss.backward()

with torch.no_grad():
    cls, masks = preds[-1]
    up = F.interpolate(masks, size=IMG, mode="bilinear", align_corners=False).sigmoid()
    sem = torch.einsum("bqc,bqhw->bchw", cls.softmax(-1)[..., :-1], up)

fx = {"config": {"B": B, "CIN": CIN, "CB": CB, "LT": LT, "Q": Q, "K": K, "D": D, "G": G, "heads": NH, "points": NP,
                 "enc": ENC, "dec": DEC, "ffe": FFE, "ffd": FFD, "PM": PM, "P": PTS, "normalizer": NMASK},
      "params": {k: flat(v) for k, v in P.items()}, "grads": {k: flat(v.grad) for k, v in P.items()},
      "features": [flat(f) for f in feats], "dfeatures": [flat(f.grad) for f in feats],
      "tokens": flat(tokens), "dtokens": flat(tokens.grad), "labels": flat(labels.to(dt)),
      "class_logits_last": flat(preds[-1][0]), "mask_logits_last": flat(preds[-1][1]),
      "loss": total, "points": points, "semantic": flat(sem)}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "mask2former_head.json")
with open(path, "w") as f:
    json.dump(fx, f)
print("wrote", path, os.path.getsize(path), "bytes; loss", total, "masks", NMASK)
