"""PyTorch reference for the Mask2Former matching and losses (HeadsTests/Mask2FormerLossTests).

Re-run from the repository root:  python3 Tests/HeadsTests/make_loss_fixture.py
Writes Tests/HeadsTests/Fixtures/mask2former_loss.json.

Semantics of mmdet's Mask2FormerHead (HungarianAssigner with ClassificationCost 2,
CrossEntropyLossCost 5 (sigmoid), DiceCost 5 (pred_act, eps 1); CrossEntropyLoss 2 with
class_weight [1]*K + [0.1] and avg_factor = Σ class weights; mask BCE 5 averaged over
num_masks·num_points; naive dice 5, eps 1, averaged over num_masks) with mmseg's
semantic targets (one mask per present class, 255 ignored). The random points are drawn
here and stored so that the Swift side uses the same ones.
"""
import json, os
import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

torch.manual_seed(1)
dt = torch.float64
B, Q, K, h, w, H, W = 2, 6, 4, 5, 7, 10, 14
PM, P = 50, 40
k_unc = int(0.75 * P)


def point_sample(maps, pts):  # maps [N, H, W], pts [N, P, 2] in [0,1] → [N, P]
    return F.grid_sample(maps[:, None], 2 * pts[:, None] - 1, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0, 0]


def flat(t):
    t = torch.as_tensor(t)
    return {"shape": list(t.shape), "values": [float(x) for x in t.detach().reshape(-1).tolist()]}


labels = torch.randint(0, K, (B, H, W))
labels[0, :3, :] = 255                 # ignored band
labels[1][labels[1] == 2] = 0          # class 2 absent in image 1
labels[1, 4:, 6:] = 3
cls = torch.randn(B, Q, K + 1, dtype=dt, requires_grad=True)
masks = (torch.randn(B, Q, h, w, dtype=dt) * 2).requires_grad_(True)

targets = []
for b in range(B):
    classes = [c for c in range(K) if (labels[b] == c).any()]
    targets.append((classes, torch.stack([(labels[b] == c).to(dt) for c in classes])))

matching_pts, assignments = [], []
cls_t = torch.full((B, Q), K, dtype=torch.long)
pairs = []
costs = []
for b in range(B):
    classes, gt = targets[b]
    pts = torch.rand(1, PM, 2, dtype=dt)
    matching_pts.append(pts)
    with torch.no_grad():
        x = point_sample(masks[b], pts.repeat(Q, 1, 1))
        t = point_sample(gt, pts.repeat(len(classes), 1, 1))
        c_cls = -cls[b].softmax(-1)[:, classes]
        pos = F.binary_cross_entropy_with_logits(x, torch.ones_like(x), reduction="none")
        neg = F.binary_cross_entropy_with_logits(x, torch.zeros_like(x), reduction="none")
        c_bce = (torch.einsum("nc,mc->nm", pos, t) + torch.einsum("nc,mc->nm", neg, 1 - t)) / PM
        s = x.sigmoid()
        c_dice = 1 - (2 * torch.einsum("nc,mc->nm", s, t) + 1) / (s.sum(-1)[:, None] + t.sum(-1)[None, :] + 1)
        cost = 2 * c_cls + 5 * c_bce + 5 * c_dice
    costs.append(cost)
    rows, cols = linear_sum_assignment(cost.numpy())
    a = [0] * len(classes)
    for r, c in zip(rows, cols):
        a[c] = int(r)
        cls_t[b, r] = classes[c]
    assignments.append(a)
    pairs += sorted([(b, int(r), int(c)) for r, c in zip(rows, cols)], key=lambda p: p[1])

cw = torch.ones(K + 1, dtype=dt); cw[K] = 0.1
ce = F.cross_entropy(cls.reshape(-1, K + 1), cls_t.reshape(-1), weight=cw, reduction="none")
loss_cls = 2 * ce.sum() / cw[cls_t.reshape(-1)].sum()

N = len(pairs)
M = max(N, 1)
preds = torch.stack([masks[b, q] for b, q, g in pairs])
tg = torch.stack([targets[b][1][g] for b, q, g in pairs])
cand = torch.rand(N, 3 * P, 2, dtype=dt)
fresh = torch.rand(N, P - k_unc, 2, dtype=dt)
with torch.no_grad():
    unc = -point_sample(preds, cand).abs()
    idx = unc.topk(k_unc, dim=1)[1]
    chosen = torch.gather(cand, 1, idx[..., None].expand(-1, -1, 2))
    pts = torch.cat([chosen, fresh], 1)
xp = point_sample(preds, pts)
tp = point_sample(tg, pts)
loss_mask = 5 * F.binary_cross_entropy_with_logits(xp.reshape(-1), tp.reshape(-1), reduction="sum") / (M * P)
sp = xp.sigmoid()
dice = 1 - (2 * (sp * tp).sum(1) + 1) / (sp.sum(1) + tp.sum(1) + 1)
loss_dice = 5 * dice.sum() / M
(loss_cls + loss_mask + loss_dice).backward()

fx = {"B": B, "Q": Q, "K": K, "P": P, "labels": flat(labels.to(dt)), "class_logits": flat(cls), "mask_logits": flat(masks),
      "matching_points": [flat(p) for p in matching_pts], "candidates": flat(cand), "fresh": flat(fresh),
      "costs": [flat(c) for c in costs], "assignments": assignments, "normalizer": M,
      "loss_cls": float(loss_cls), "loss_mask": float(loss_mask), "loss_dice": float(loss_dice),
      "dclass": flat(cls.grad), "dmask": flat(masks.grad)}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "mask2former_loss.json")
with open(path, "w") as f:
    json.dump(fx, f)
print("wrote", path, os.path.getsize(path), "bytes", "pairs", N, float(loss_cls), float(loss_mask), float(loss_dice))
