#!/usr/bin/env python3
"""Full-size check for the EVA02 and CLIP families (not run by CI), like check_full_size.py:
random-weight EVA02-S/14 in both block layouts (fused qkv + packed SwiGLU as released for T/S;
split q/k/v + w1/w2/ffn_ln/w3 as released for B/L, here with S dims) saved as timm-named
.safetensors and official-named .pth, and a random-weight CLIP ViT-B/16 saved with Hugging Face
CLIPModel names (.safetensors) and OpenAI names (.pth, float16); two PNG inputs (one 300x200,
stretched bilinearly with --fit stretch) at 224x224, run through `causal-tune features`
(model.peft.method: none) and compared with PyTorch block by block (rel err < 1e-4).

    swift build -c release && python3 Tests/BackboneTests/Fixtures/check_families_full_size.py [path/to/causal-tune]

Without a causal-tune binary at that path it builds everything, runs the PyTorch side and stops
before the CLI call (exit status 2). Needs torch, timm, transformers, safetensors, h5py, Pillow;
works in a temporary directory (~1 GB).
"""
import os, sys, subprocess, tempfile, numpy as np, torch, torch.nn as nn, torch.nn.functional as F, h5py
from functools import partial
from PIL import Image
from safetensors.torch import save_file
torch.manual_seed(1)
np.random.seed(1)
CLI = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else '.build/release/causal-tune')
os.chdir(tempfile.mkdtemp(prefix='ct-families-full-size-'))
print('working in', os.getcwd())
# ImageNet mean/std, as check_full_size.py (CLIP's own statistics differ; the input check below shows
# which normalisation the CLI applied).
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3,1,1); STD = torch.tensor([58.395, 57.12, 57.375]).view(3,1,1)
imgs = []
for n,(w,h) in enumerate([(300, 200), (224, 224)]):
    a = (np.random.rand(h, w, 3) * 255).astype(np.uint8)
    Image.fromarray(a).save(f'in{n}.png'); imgs.append(a)
S = 224
x = torch.stack([(F.interpolate(torch.from_numpy(a).permute(2,0,1).float()[None], size=(S,S), mode='bilinear', align_corners=False)[0] - MEAN) / STD for a in imgs])

def rnd(sd):
    """Random, non-trivial values everywhere (biases, norm affines), rounded to bfloat16 precision
    so that the float16 / bfloat16 files hold the same model."""
    out = {}
    for k, v in sd.items():
        if not v.is_floating_point(): out[k] = v; continue
        if k.endswith('bias') or k in ('cls_token', 'class_embedding'): v = 0.05*torch.randn_like(v)
        if ('norm' in k or 'layer_norm' in k or 'layrnorm' in k or 'layernorm' in k) and k.endswith('weight'): v = 1 + 0.1*torch.randn_like(v)
        if 'pos' in k and 'embed' in k and v.dim() >= 2: v = 0.3*torch.randn_like(v)
        if k.endswith('cls_token') or k.endswith('class_embedding'): v = 0.3*torch.randn_like(v)
        v = torch.where(v.abs() < 1e-3, torch.where(v < 0, -1e-3, 1e-3), v).to(torch.bfloat16).float()
        out[k] = v
    return out

def official_rope(g, head_dim, ref=16):
    """EVA-02 rope.py VisionRotaryEmbeddingFast(dim=head_dim/2, pt_seq_len=16, ft_seq_len=g) buffers."""
    dim = head_dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    f = torch.einsum('..., f -> ... f', torch.arange(g) / g * ref, freqs).repeat_interleave(2, -1)
    f = torch.cat([f[:, None, :].expand(g, g, -1), f[None, :, :].expand(g, g, -1)], -1)
    return f.cos().reshape(g * g, -1), f.sin().reshape(g * g, -1)

def eva_timm_to_official(sd, depth, C, head_dim, g):
    """timm Eva names -> EVA-02 MIM checkpoint names (plus the keys a backbone loader must ignore)."""
    out = {}
    for k, v in sd.items():
        k = (k.replace('mlp.fc1_g.', 'mlp.w1.').replace('mlp.fc1_x.', 'mlp.w2.').replace('mlp.fc1.', 'mlp.w12.')
              .replace('mlp.fc2.', 'mlp.w3.').replace('mlp.norm.', 'mlp.ffn_ln.').replace('attn.q_proj.bias', 'attn.q_bias')
              .replace('attn.v_proj.bias', 'attn.v_bias'))
        if k.startswith('fc_norm.'): k = 'norm.' + k[len('fc_norm.'):]
        out[k] = v
    cos, sin = official_rope(g, head_dim)
    out['rope.freqs_cos'], out['rope.freqs_sin'] = cos, sin
    for i in range(depth):
        out[f'blocks.{i}.attn.rope.freqs_cos'], out[f'blocks.{i}.attn.rope.freqs_sin'] = cos, sin
    out['mask_token'] = 0.02*torch.randn(1, 1, C)
    out['lm_head.weight'] = 0.02*torch.randn(1024, C); out['lm_head.bias'] = torch.zeros(1024)
    return out

def clip_hf_to_openai(sd, C):
    """transformers CLIPModel names (vision tower) -> OpenAI `visual.*` names, plus a tiny text tower."""
    out = {}
    for k, v in sd.items():
        if not k.startswith('vision_model.'): continue
        k = k[len('vision_model.'):]
        if k.startswith('encoder.layers.'):
            i, rest = k[len('encoder.layers.'):].split('.', 1); p = f'visual.transformer.resblocks.{i}.'
            if rest.startswith('self_attn.q_proj.'):
                kind = rest.split('.')[-1]; a = f'vision_model.encoder.layers.{i}.self_attn.'
                out[p + f'attn.in_proj_{kind}'] = torch.cat([sd[a + f'{n}_proj.{kind}'] for n in 'qkv'], 0)
                continue
            if rest.startswith(('self_attn.k_proj.', 'self_attn.v_proj.')): continue
            rest = (rest.replace('self_attn.out_proj.', 'attn.out_proj.').replace('layer_norm1.', 'ln_1.')
                    .replace('layer_norm2.', 'ln_2.').replace('mlp.fc1.', 'mlp.c_fc.').replace('mlp.fc2.', 'mlp.c_proj.'))
            out[p + rest] = v; continue
        out['visual.' + {'embeddings.class_embedding': 'class_embedding', 'embeddings.patch_embedding.weight': 'conv1.weight',
                         'embeddings.position_embedding.weight': 'positional_embedding', 'pre_layrnorm.weight': 'ln_pre.weight',
                         'pre_layrnorm.bias': 'ln_pre.bias', 'post_layernorm.weight': 'ln_post.weight',
                         'post_layernorm.bias': 'ln_post.bias'}[k]] = v
    out['visual.proj'] = sd['visual_projection.weight'].t().contiguous()
    out['positional_embedding'] = torch.randn(77, 64) * 0.01; out['token_embedding.weight'] = torch.randn(100, 64) * 0.02
    out['transformer.resblocks.0.attn.in_proj_weight'] = torch.randn(192, 64) * 0.02
    out['ln_final.weight'] = torch.ones(64); out['ln_final.bias'] = torch.zeros(64)
    out['text_projection'] = torch.randn(64, 512) * 0.02; out['logit_scale'] = torch.tensor(4.6052)
    return out

cases = []  # (arch, weight files, reference outputs [B, C, g, g] per block, extra yaml)

# ---------------- EVA02-S/14, both layouts ----------------
from timm.models.eva import Eva, checkpoint_filter_fn
C, depth, heads, g = 384, 12, 6, S // 14
for layout in ['fused', 'split']:
    split = layout == 'split'
    m = Eva(img_size=S, patch_size=14, embed_dim=C, depth=depth, num_heads=heads, qkv_fused=not split,
            mlp_ratio=4 * 2 / 3, swiglu_mlp=True, scale_mlp=split, use_rot_pos_emb=True, ref_feat_shape=(16, 16),
            num_classes=0, norm_layer=partial(nn.LayerNorm, eps=1e-6)).eval()
    sd = rnd(m.state_dict()); m.load_state_dict(sd, strict=True)
    official = eva_timm_to_official(sd, depth, C, C // heads, g)
    back = checkpoint_filter_fn({'module' if split else 'model': dict(official)}, m)  # timm's own converter
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd), 'official names do not round-trip'
    save_file({k: v.contiguous() for k, v in sd.items()}, f'eva02_s14_{layout}_timm.safetensors')
    torch.save({'module' if split else 'model': official}, f'eva02_s14_{layout}.pth')
    with torch.no_grad():
        t, rope = m._pos_embed(m.patch_embed(x)); outs = []
        for blk in m.blocks:
            t = blk(t, rope=rope); outs.append(t[:, 1:].transpose(1, 2).reshape(2, C, g, g).numpy())
    for wf in [f'eva02_s14_{layout}_timm.safetensors', f'eva02_s14_{layout}.pth']:
        cases.append(('eva02_vits14', wf, outs, ''))

# ---------------- CLIP ViT-B/16 ----------------
from transformers import CLIPConfig, CLIPModel
C, depth, g = 768, 12, S // 16
vc = dict(hidden_size=C, intermediate_size=4 * C, num_attention_heads=12, num_hidden_layers=depth, image_size=S,
          patch_size=16, hidden_act='quick_gelu', layer_norm_eps=1e-5, projection_dim=512)
tc = dict(hidden_size=64, intermediate_size=256, num_attention_heads=2, num_hidden_layers=1, vocab_size=100,
          max_position_embeddings=77, projection_dim=512, bos_token_id=0, eos_token_id=1, pad_token_id=1)
cfg = CLIPConfig(text_config=tc, vision_config=vc, projection_dim=512); cfg._attn_implementation = 'eager'
cm = CLIPModel(cfg).eval()
sd = rnd(cm.state_dict()); cm.load_state_dict(sd, strict=True)
save_file({k: v.contiguous() for k, v in sd.items()}, 'clip_vitb16_hf.safetensors')
torch.save({k: v.half() for k, v in clip_hf_to_openai(sd, C).items()}, 'clip_vitb16_openai.pth')  # OpenAI ships float16
with torch.no_grad():
    hs = cm.vision_model(pixel_values=x, output_hidden_states=True).hidden_states  # [0] = after pre_layrnorm
    outs = [h[:, 1:].transpose(1, 2).reshape(2, C, g, g).numpy() for h in hs[1:]]
# patch_size defaults to the architecture's own (16 for clip_vitb16): once left out, once spelled out.
for wf, extra in [('clip_vitb16_hf.safetensors', ''), ('clip_vitb16_openai.pth', ', patch_size: 16')]:
    cases.append(('clip_vitb16', wf, outs, extra))

if not (os.path.isfile(CLI) and os.access(CLI, os.X_OK)):
    print(f'no causal-tune binary at {CLI}: PyTorch side built ({len(cases)} cases), stopping before the CLI call')
    sys.exit(2)

worst = 0
for arch, wf, outs, extra in cases:
    open('c.yaml', 'w').write(f'model:\n  backbone: {{arch: {arch}, weights: {wf}, image_size: {S}{extra}}}\n  peft: {{method: none}}\n')
    subprocess.run([CLI, 'features', '--config', 'c.yaml', '--fit', 'stretch', '--out', 'o.h5', 'in0.png', 'in1.png'], check=True)
    with h5py.File('o.h5', 'r') as f:  # closed before the next run rewrites o.h5 (HDF5 file locking)
        e_in = np.abs(f['image'][:] - x.numpy()).max() / np.abs(x.numpy()).max()
        errs = [np.abs(f[f'layer_{i:02d}/spatial'][:] - outs[i]).max() / np.abs(outs[i]).max() for i in range(len(outs))]
    worst = max(worst, max(errs))
    print(arch, wf, 'input', f'{e_in:.2e}', 'blocks max rel err', f'{max(errs):.2e}', [f'{e:.1e}' for e in errs])
print('worst relative error', worst)
sys.exit(0 if worst < 1e-4 else 1)
