#!/usr/bin/env python3
"""End-to-end reference for `causal-tune features --checkpoint` (issue 4's "must show").

Re-run (from the repository root; needs torch, timm, safetensors, h5py, numpy, Pillow, and the
Backbone fixtures `Tests/BackboneTests/Fixtures/{s14.safetensors,img0.png,img1.png}`):

    python3 Tests/PEFTTests/Fixtures/make_features_fixtures.py

For each variant (`dct`: the default Causal-Tune configuration; `rein`) it writes, into
`Tests/PEFTTests/Fixtures/`:

  features_<variant>_checkpoint.h5   a reference §Files checkpoint: root attributes and /params/peft/*
                                     (random PEFT parameters, s = 0.5 so the refinement shows)
  features_<variant>_expected.h5     /layer_<ii>/{spatial,spectrum,causal,refined,band_energy}
                                     and /mask, computed here in float64

The model is the tiny random DINOv2 of the Backbone fixtures (C = 16, 2 blocks, 2 heads,
patch 14, 56×56 input → 4×4 grid), run with timm's DINOv2 blocks; after every block the
Causal-Tune layer (`causal_tune` in make_fixtures.py, written from the
formulas of docs/reference.md) refines the patch tokens, exactly as the Swift backbone calls its adapter.
"""
import os
import sys

import h5py
import numpy as np
import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from timm.models.vision_transformer import _convert_dinov2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_fixtures import band_energy, causal_tune  # noqa: E402  (sets float64 as default dtype)

BACKBONE = os.environ.get("BACKBONE_FIXTURES", os.path.join(HERE, "..", "..", "BackboneTests", "Fixtures"))
C, DEPTH, HEADS, PATCH, IMAGE, GRID, M = 16, 2, 2, 14, 56, 4, 10
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])

VARIANTS = {
    "dct": dict(transform="dct", mode="bandpass", shape="gaussian", low=0.2, high=0.7, discard=False),
    "rein": dict(transform="identity", mode="none", shape="gaussian", low=0.2, high=0.7, discard=False),
}


def model():
    sd = {k: v.double() for k, v in load_file(os.path.join(BACKBONE, "s14.safetensors")).items()}
    m = timm.create_model("vit_small_patch14_dinov2", pretrained=False, embed_dim=C, depth=DEPTH,
                          num_heads=HEADS, img_size=IMAGE, patch_size=PATCH)
    m.load_state_dict(_convert_dinov2(dict(sd), m), strict=True)
    return m.double().eval()


def inputs():
    xs = []
    for n in range(2):
        rgb = np.asarray(Image.open(os.path.join(BACKBONE, f"img{n}.png")).convert("RGB"), dtype=np.float64)
        xs.append(((rgb - MEAN) / STD).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(xs))


def main():
    m, x = model(), inputs()
    gen = torch.Generator().manual_seed(4)
    for name, v in VARIANTS.items():
        cfg = dict(v, prefix=1, h=GRID, w=GRID)
        p = {
            "tokens": torch.rand(DEPTH, M, C, generator=gen) * 2 - 1,
            "f_t/weight": (torch.rand(C, C, generator=gen) * 2 - 1) / C ** 0.5,
            "f_t/bias": (torch.rand(C, generator=gen) * 2 - 1) / C ** 0.5,
            "f_d/weight": (torch.rand(C, C, generator=gen) * 2 - 1) / C ** 0.5,
            "f_d/bias": (torch.rand(C, generator=gen) * 2 - 1) / C ** 0.5,
            "scale": torch.tensor([0.5]),
        }
        p = {k: t.float().double() for k, t in p.items()}   # what the float32 checkpoint holds
        with h5py.File(os.path.join(HERE, f"features_{name}_checkpoint.h5"), "w") as f:
            f.attrs["format"] = "causal-tune-checkpoint"
            f.attrs["version"] = 1
            f.attrs["step"] = 0
            f.attrs["world_size"] = 1
            f.attrs["config"] = f"# written by make_features_fixtures.py ({name})\n"
            for k, t in p.items():
                f.create_dataset(f"params/peft/{k}", data=t.float().numpy())
        expected = {}
        with torch.no_grad():
            h = m._pos_embed(m.patch_embed(x))
            for i, blk in enumerate(m.blocks):
                h = blk(h)
                out, spec, fc, mask = causal_tune(h, p, cfg, i)
                spatial = h[:, 1:].transpose(1, 2).reshape(2, C, GRID, GRID)
                refined = out[:, 1:].transpose(1, 2).reshape(2, C, GRID, GRID)
                d = f"layer_{i:02d}/"
                expected[d + "spatial"] = spatial
                expected[d + "spectrum"] = spec
                expected[d + "causal"] = fc
                expected[d + "refined"] = refined
                expected[d + "band_energy"] = band_energy(spec, cfg)
                expected["mask"] = mask
                h = out
        with h5py.File(os.path.join(HERE, f"features_{name}_expected.h5"), "w") as f:
            for k, t in expected.items():
                f.create_dataset(k, data=t.float().numpy())
        print(f"wrote features_{name}_checkpoint.h5, features_{name}_expected.h5")


if __name__ == "__main__":
    main()
