#!/usr/bin/env python3
"""clip_openai_jit.pt: the tiny CLIP of clip_openai.pth as a TorchScript archive (torch.jit.save of
a module tree with OpenAI's attribute names, float16), the form OpenAI released ViT-B-16.pt and
ViT-L-14.pt in. Run after make_family_fixtures.py, in this folder: python3 make_clip_jit_fixture.py
"""
import torch, torch.nn as nn
from collections import OrderedDict

class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c)
        self.attn = nn.MultiheadAttention(c, heads)
        self.ln_2 = nn.LayerNorm(c)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(c, 4 * c)), ("c_proj", nn.Linear(4 * c, c))]))
    def forward(self, x):
        return x

class Transformer(nn.Module):
    def __init__(self, c, depth, heads):
        super().__init__()
        self.resblocks = nn.Sequential(*[Block(c, heads) for _ in range(depth)])
    def forward(self, x):
        return self.resblocks(x)

class Visual(nn.Module):
    def __init__(self, c, depth, heads, patch, grid, out):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(c))
        self.positional_embedding = nn.Parameter(torch.zeros(1 + grid * grid, c))
        self.ln_pre = nn.LayerNorm(c)
        self.transformer = Transformer(c, depth, heads)
        self.ln_post = nn.LayerNorm(c)
        self.proj = nn.Parameter(torch.zeros(c, out))
    def forward(self, x):
        return self.transformer(self.ln_pre(self.conv1(x).flatten(2).transpose(1, 2)))

class CLIP(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = Visual(32, 2, 2, 16, 4, 8)
        self.logit_scale = nn.Parameter(torch.ones([]))
    def forward(self, x):
        return self.visual(x)

sd = torch.load("clip_openai.pth")
m = CLIP()
m.load_state_dict({k: v.float() for k, v in sd.items() if k.startswith("visual.") or k == "logit_scale"}, strict=True)
m = m.half()   # OpenAI's released archives hold float16
torch.jit.save(torch.jit.script(m), "clip_openai_jit.pt")
print("ok")
