# Fixture generator for ResamplingTests.swift (NOT needed at runtime or in CI).
# Re-run:  python3 Tests/NumericsTests/make_resample_fixture.py > /tmp/fixture.txt
# and paste the printed arrays into ResamplingTests.swift. Uses torch (CPU), float32.
# Input map: x.flat[i] = float32(sin(0.7 i) + 0.05 i), shape [1, 2, 4, 5].
import numpy as np
import torch
import torch.nn.functional as F

def inp(shape):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    return torch.from_numpy((np.sin(0.7 * i) + 0.05 * i).astype(np.float32)).reshape(shape)

def show(name, t):
    vals = ", ".join(f"{v:.7g}" for v in t.detach().reshape(-1).tolist())
    print(f"    // {name}\n    [{vals}]")

x = inp([1, 2, 4, 5])
show("F.interpolate(x, size=(7, 3), mode='bilinear', align_corners=False)",
     F.interpolate(x, size=(7, 3), mode="bilinear", align_corners=False))
show("F.interpolate(x, size=(3, 8), mode='bilinear', align_corners=False)",
     F.interpolate(x, size=(3, 8), mode="bilinear", align_corners=False))
show("F.interpolate(x, size=(7, 9), mode='bicubic', align_corners=False)",
     F.interpolate(x, size=(7, 9), mode="bicubic", align_corners=False))
show("F.interpolate(x, size=(2, 3), mode='bicubic', align_corners=False)",
     F.interpolate(x, size=(2, 3), mode="bicubic", align_corners=False))
show("F.interpolate(x, scale_factor=(1.7, 2.3), mode='bicubic', align_corners=False)  # size (6, 11)",
     F.interpolate(x, scale_factor=(1.7, 2.3), mode="bicubic", align_corners=False))
# bilinear backward: gradient of sum(out * g) w.r.t. x with g.flat[i] = cos(0.3 i)
xr = x.clone().requires_grad_(True)
out = F.interpolate(xr, size=(7, 3), mode="bilinear", align_corners=False)
n = out.numel()
g = torch.from_numpy(np.cos(0.3 * np.arange(n, dtype=np.float64)).astype(np.float32)).reshape(out.shape)
(out * g).sum().backward()
show("d/dx sum(F.interpolate(x, size=(7, 3), mode='bilinear') * g), g.flat[i] = cos(0.3 i)", xr.grad)
