#!/usr/bin/env python3
"""Full-size check (not run by CI): random-weight dinov2_vits14 and dinov2_vits14_reg4 saved as
official-format .pth and Hugging Face-named .safetensors, two PNG inputs (one 300x200, stretched
bilinearly with --fit stretch), run through `causal-tune features` (model.peft.method: none, image_size 224, so the
37x37 position grid is resampled to 16x16) and compared with PyTorch block by block.

    swift build -c release && python3 Tests/BackboneTests/Fixtures/check_full_size.py [path/to/causal-tune]

Needs torch, timm, safetensors, h5py, Pillow; works in a temporary directory (~400 MB).
"""
import os, sys, subprocess, tempfile, numpy as np, torch, timm, h5py, torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
torch.manual_seed(1)
np.random.seed(1)
CLI = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else '.build/release/causal-tune')
os.chdir(tempfile.mkdtemp(prefix='ct-full-size-'))
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3,1,1); STD = torch.tensor([58.395, 57.12, 57.375]).view(3,1,1)
imgs = []
for n,(w,h) in enumerate([(300, 200), (224, 224)]):
    a = (np.random.rand(h, w, 3) * 255).astype(np.uint8)
    Image.fromarray(a).save(f'in{n}.png'); imgs.append(a)
S = 224
x = torch.stack([(F.interpolate(torch.from_numpy(a).permute(2,0,1).float()[None], size=(S,S), mode='bilinear', align_corners=False)[0] - MEAN) / STD for a in imgs])

def hf_names(sd, C):
    out = {}
    for k, v in sd.items():
        if k.startswith('blocks.'):
            i, rest = k[7:].split('.', 1); p = f'encoder.layer.{i}.'
            if rest.startswith('attn.qkv.'):
                kind = rest.split('.')[-1]
                for j, part in enumerate(['query','key','value']): out[p+f'attention.attention.{part}.{kind}'] = v[j*C:(j+1)*C].clone()
                continue
            rest = rest.replace('attn.proj.','attention.output.dense.').replace('ls1.gamma','layer_scale1.lambda1').replace('ls2.gamma','layer_scale2.lambda1')
            out[p+rest] = v
        else:
            out[{'cls_token':'embeddings.cls_token','mask_token':'embeddings.mask_token','pos_embed':'embeddings.position_embeddings','register_tokens':'embeddings.register_tokens','patch_embed.proj.weight':'embeddings.patch_embeddings.projection.weight','patch_embed.proj.bias':'embeddings.patch_embeddings.projection.bias','norm.weight':'layernorm.weight','norm.bias':'layernorm.bias'}[k]] = v
    return out

worst = 0
for arch, R in [('dinov2_vits14', 0), ('dinov2_vits14_reg4', 4)]:
    C = 384
    m = timm.create_model('vit_small_patch14_dinov2', pretrained=False, img_size=518)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    for k in sd:
        if k.endswith('gamma'): sd[k] = 0.5 + torch.rand_like(sd[k])
        elif 'norm' in k and k.endswith('weight'): sd[k] = 1 + 0.1*torch.randn_like(sd[k])
        elif k.endswith('bias'): sd[k] = 0.05*torch.randn_like(sd[k])
    sd['pos_embed'] = 0.3*torch.randn_like(sd['pos_embed']); sd['cls_token'] = 0.3*torch.randn_like(sd['cls_token'])
    sd['mask_token'] = torch.zeros(1, C)
    if R: sd['register_tokens'] = 0.3*torch.randn(1, R, C)
    torch.save(sd, f'{arch}_pretrain.pth')
    save_file({k: v.contiguous() for k, v in hf_names(sd, C).items()}, f'{arch}_hf.safetensors')
    # reference: converter semantics (size-based bicubic), official token order
    g = S // 14
    pos = sd['pos_embed']
    pp = F.interpolate(pos[:, 1:].reshape(1, 37, 37, C).permute(0, 3, 1, 2), size=(g, g), mode='bicubic', align_corners=False)
    pos = torch.cat([pos[:, :1], pp.permute(0, 2, 3, 1).reshape(1, g*g, C)], 1)
    with torch.no_grad():
        ref = timm.create_model('vit_small_patch14_dinov2', pretrained=False, img_size=S)
        sd2 = {k: v for k, v in sd.items() if k not in ('mask_token', 'register_tokens')}; sd2['pos_embed'] = pos
        ref.load_state_dict(sd2)
        t = F.conv2d(x, sd['patch_embed.proj.weight'], sd['patch_embed.proj.bias'], stride=14).flatten(2).transpose(1, 2)
        t = torch.cat([sd['cls_token'].expand(2, -1, -1) + pos[:, :1], t + pos[:, 1:]], 1)
        if R: t = torch.cat([t[:, :1], sd['register_tokens'].expand(2, -1, -1), t[:, 1:]], 1)
        outs = []
        for blk in ref.blocks:
            t = blk(t); outs.append(t[:, 1+R:].transpose(1, 2).reshape(2, C, g, g).numpy())
    for wf in [f'{arch}_pretrain.pth', f'{arch}_hf.safetensors']:
        open('c.yaml', 'w').write(f'model:\n  backbone: {{arch: {arch}, weights: {wf}, image_size: {S}}}\n  peft: {{method: none}}\n')
        subprocess.run([CLI, 'features', '--config', 'c.yaml', '--fit', 'stretch', '--out', 'o.h5', 'in0.png', 'in1.png'], check=True)
        f = h5py.File('o.h5', 'r')
        e_in = np.abs(f['image'][:] - x.numpy()).max() / np.abs(x.numpy()).max()
        errs = [np.abs(f[f'layer_{i:02d}/spatial'][:] - outs[i]).max() / np.abs(outs[i]).max() for i in range(12)]
        worst = max(worst, max(errs))
        print(arch, wf, 'input', f'{e_in:.2e}', 'blocks max rel err', f'{max(errs):.2e}', [f'{e:.1e}' for e in errs])
print('worst relative error', worst)
sys.exit(0 if worst < 1e-4 else 1)
