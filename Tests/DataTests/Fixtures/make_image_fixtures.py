#!/usr/bin/env python3
"""Small image files in every format `ImageIO` must read, with the pixels PIL decodes.

Re-run (from the repository root): python3 Tests/DataTests/Fixtures/make_image_fixtures.py
Writes Tests/DataTests/Fixtures/images/{palette.png, grey.png, rgba.png, rgb16.png, photo.jpg,
expected.json}.  expected.json holds, per file, the decoded array PIL gives (palette: the raw
indices; rgba: the RGB channels; grey: the grey values; rgb16: the 8-bit values (v >> 8);
photo.jpg: PIL's RGB decode).
"""
import json, os
import numpy as np
from PIL import Image

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")
os.makedirs(here, exist_ok=True)
rng = np.random.default_rng(7)
exp = {}
idx = rng.integers(0, 20, size=(6, 10)).astype(np.uint8); idx[0, 0] = 255
p = Image.fromarray(idx, mode="P")
pal = rng.integers(0, 256, size=256 * 3).astype(np.uint8).tolist()
p.putpalette(pal)
p.save(os.path.join(here, "palette.png"))
exp["palette.png"] = idx.ravel().tolist()
g = rng.integers(0, 256, size=(5, 7)).astype(np.uint8)
Image.fromarray(g, mode="L").save(os.path.join(here, "grey.png"))
exp["grey.png"] = g.ravel().tolist()
rgba = rng.integers(0, 256, size=(4, 6, 4)).astype(np.uint8); rgba[..., 3] = 255
Image.fromarray(rgba, mode="RGBA").save(os.path.join(here, "rgba.png"))
exp["rgba.png"] = rgba[..., :3].ravel().tolist()
import zlib, struct
# 16-bit RGB PNG written by hand (PIL cannot write 16-bit RGB)
rgb16 = rng.integers(0, 65536, size=(3, 4, 3)).astype(np.uint16)
raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(3))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 16, 2, 0, 0, 0)) + \
      chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(os.path.join(here, "rgb16.png"), "wb").write(png)
exp["rgb16.png"] = (rgb16 >> 8).astype(np.uint8).ravel().tolist()  # libpng's simplified API rounds: compare ±1
y, x = np.mgrid[0:16, 0:24]
photo = np.stack([x * 10, y * 15, (x + y) * 6], axis=-1).clip(0, 255).astype(np.uint8)
Image.fromarray(photo).save(os.path.join(here, "photo.jpg"), quality=95)
exp["photo.jpg"] = np.array(Image.open(os.path.join(here, "photo.jpg")).convert("RGB")).ravel().tolist()
exp["sizes"] = {"palette.png": [10, 6], "grey.png": [7, 5], "rgba.png": [6, 4], "rgb16.png": [4, 3], "photo.jpg": [24, 16]}
json.dump(exp, open(os.path.join(here, "expected.json"), "w"))
