#!/usr/bin/env python3
"""Builds the `score` fixture: random prediction / ground-truth folders in Cityscapes naming
and the official cityscapesScripts evaluation of them.

Re-run (from the repository root):
    pip install cityscapesscripts
    python3 Tests/DataTests/Fixtures/make_score_fixture.py
It rewrites Tests/DataTests/Fixtures/score/{pred,gt}/... and score/expected.json.

Predictions are train ids (0..18, with some 255 and out-of-range values 19/200 that must
count as wrong); ground truth is Cityscapes *label ids* 0..33 (every id, including the ones
cityscapesScripts ignores in evaluation). For the official script the predictions are
converted to label ids (train id t -> its label id; 255 and out-of-range -> 0 'unlabeled',
which the script counts as a false negative of the gt class, as our `score` does).
Class 'train' (16) appears in neither -> nan/null; 'motorcycle' (17) only in predictions
-> IoU 0.  The script is called with instance-level scores off (no instanceIds files).
"""
import json, os, shutil
import numpy as np
from PIL import Image
from cityscapesscripts.helpers.labels import labels, trainId2label
import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as ev

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "score")
shutil.rmtree(root, ignore_errors=True)
rng = np.random.default_rng(20240605)
H, W = 48, 96
names = [("aachen", "aachen_000000_000019"), ("aachen", "aachen_000001_000019"),
         ("bremen", "bremen_000003_000019"), ("bremen", "bremen_000010_000019"),
         ("ulm", "ulm_000042_000019")]
train_to_id = np.zeros(256, dtype=np.uint8)  # 255 / unknown -> 0 unlabeled
for t in range(19):
    train_to_id[t] = trainId2label[t].id
all_ids = np.array([l.id for l in labels if l.id >= 0 and l.id not in (31, 32)], dtype=np.uint8)  # no train/motorcycle in gt
valid_train = [t for t in range(19) if t not in (16, 17)]
pred_files, gt_files = [], []
for city, stem in names:
    # blocky gt label ids: 6x12 blocks of random ids, some ignored ids, + 10% pixel noise
    blocks = rng.choice(len(valid_train) + 4, size=(H // 8, W // 8))
    gt_train = np.array([valid_train[b] if b < len(valid_train) else 255 for b in blocks.ravel()]).reshape(blocks.shape)
    gt_train = np.kron(gt_train, np.ones((8, 8), dtype=np.int64))
    gt_ids = np.where(gt_train == 255, rng.choice([0, 1, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30], size=gt_train.shape),
                      train_to_id[np.clip(gt_train, 0, 255)]).astype(np.uint8)
    noise = rng.random((H, W)) < 0.1
    gt_ids[noise] = rng.choice(all_ids, size=int(noise.sum()))
    # predictions: gt train ids corrupted: 30% random valid ids, some 17, some 255 / 19 / 200
    id_to_train = np.full(256, 255, dtype=np.int64)
    for l in labels:
        if l.id >= 0 and 0 <= l.trainId < 19:
            id_to_train[l.id] = l.trainId
    pred = id_to_train[gt_ids].copy()
    r = rng.random((H, W))
    pred[r < 0.30] = rng.choice(valid_train, size=int((r < 0.30).sum()))
    pred[(r >= 0.30) & (r < 0.33)] = 17
    pred[(r >= 0.33) & (r < 0.36)] = 255
    pred[(r >= 0.36) & (r < 0.38)] = 19
    pred[(r >= 0.38) & (r < 0.39)] = 200
    pred[pred == 255] = np.where(rng.random(int((pred == 255).sum())) < 0.5, 255, 3)
    pred = pred.astype(np.uint8)
    gdir = os.path.join(root, "gt", city); pdir = os.path.join(root, "pred", city)
    os.makedirs(gdir, exist_ok=True); os.makedirs(pdir, exist_ok=True)
    g = os.path.join(gdir, stem + "_gtFine_labelIds.png"); p = os.path.join(pdir, stem + "_leftImg8bit.png")
    Image.fromarray(gt_ids).save(g); Image.fromarray(pred).save(p)
    # the official script reads label-id predictions
    p_ids = os.path.join("/tmp", "cs_pred_" + stem + ".png")
    Image.fromarray(train_to_id[pred]).save(p_ids)
    gt_files.append(g); pred_files.append(p_ids)

args = ev.args
args.evalInstLevelScore = False
args.JSONOutput = False
args.quiet = True
args.colorized = False
args.bold = args.nocol = ""
result = ev.evaluateImgLists(pred_files, gt_files, args)
iou = {}
for t in range(19):
    v = result["classScores"][trainId2label[t].name]
    iou[trainId2label[t].name] = None if np.isnan(v) else float(v)
vals = [v for v in iou.values() if v is not None]
conf = np.array(result["confMatrix"]) if "confMatrix" in result else None
ignored_ids = [l.id for l in labels if l.id >= 0 and l.ignoreInEval]
valid_rows = [l.id for l in labels if l.id >= 0 and not l.ignoreInEval]
pixels = int(conf[valid_rows, :].sum()) if conf is not None else None
expected = {"miou": float(np.mean(vals)), "iou": iou, "pixels": pixels,
            "official_average": float(result["averageScoreClasses"])}
with open(os.path.join(root, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
print(json.dumps(expected, indent=1))
