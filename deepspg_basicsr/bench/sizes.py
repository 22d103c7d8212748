"""Section ``sizes``: parameters and GFLOPs (fvcore, Retinexformer's protocol: docs/BENCHMARKS.md) of
the enhancer presets (one pass, prior features as inputs) and of the priors. Blocks ``sizes`` and
``sizes-presets`` (docs/DEEPSPG.md)."""

from deepspg_basicsr.utils.complexity import EnhancerPass, gflops

import torch

from .common import PRESETS, SEG_PRIORS, Forward

#: Published sizes (M parameters, GFLOPs) of the presets (DeepSPG paper).
PUBLISHED = {'base': (0.55, 6.91), 'large': (2.13, 26.03)}


def add_arguments(parser):
    parser.add_argument('--size', type=int, default=256, help='square input side (the protocol: 256)')
    parser.add_argument('--no-clip', action='store_true', help='leave out CLIP (quick: left out)')


def run(rep, args):
    from deepspg_basicsr.archs.deepspg_arch import DeepSPG
    from deepspg_basicsr.priors import SegmentationPrior

    s = args.size if not args.quick else min(args.size, 64)
    x = torch.rand(1, 3, s, s)
    rows, preset_rows = [], []
    encoder_parts = ('illumination', 'embed', 'encoders', 'downs')
    for name, kwargs in PRESETS.items():
        net = DeepSPG(**kwargs)
        feats = [torch.rand(1, c, s // f, s // f) for c, f in zip(net.sem_channels, (4, 8, 16))]
        total, by_module = gflops(EnhancerPass(net), (x, *feats))
        enc = sum(by_module.get(f'net.{part}', 0) for part in encoder_parts) / 1024**3
        params = sum(p.numel() for p in net.parameters()) / 1e6
        p_pub, g_pub = PUBLISHED[name]
        rows.append([f'DeepSPG {name}, one pass', f'{params:.3f}', f'{total:.2f}', f'{p_pub} / {g_pub}'])
        rows.append([f'DeepSPG {name}: encoder part (illumination + encoder)', '', f'{enc:.2f}', ''])
        rows.append([f'DeepSPG {name}: decoder part (SEM + decoder), added by C2F', '', f'{total - enc:.2f}', ''])
        sizes = [f'{params:.3f} M ({params / p_pub - 1:+.1%})', f'{p_pub} M', f'{total:.2f} ({total / g_pub - 1:+.1%})']
        options = f'`num_feat: {kwargs["num_feat"]}, illum_feat: {kwargs["illum_feat"]}, num_blocks: [4, 3, 2]`'
        preset_rows.append([name, options, *sizes, f'{g_pub}'])
        rep.data.setdefault('enhancer', {})[name] = {'params_m': params, 'gflops': total, 'encoder_gflops': enc}
    for seg, known in SEG_PRIORS.items():
        if args.quick and seg != 'HRNet-W18-small':
            continue
        prior = SegmentationPrior(known.seg_config)
        total, by_module = gflops(Forward(prior, lambda p, x: p(x)['logits']), (x,))
        bb = sum(p.numel() for p in prior.backbone.parameters()) / 1e6
        head = sum(p.numel() for p in prior.decode_head.parameters()) / 1e6
        bb_g = by_module['module.backbone'] / 1024**3
        rows.append([f'{seg} backbone', f'{bb:.2f}', f'{bb_g:.2f}', ''])
        rows.append([f'{seg} backbone + FCN head', f'{bb + head:.2f}', f'{total:.2f}', ''])
        rep.data.setdefault('priors', {})[seg] = {'params_m': bb + head, 'gflops': total, 'backbone_gflops': bb_g}
        del prior
    if not (args.quick or args.no_clip):
        from deepspg_basicsr.priors.clip_prior import build_open_clip

        clip = build_open_clip('ViT-B-16', None)
        visual = sum(p.numel() for p in clip.visual.parameters()) / 1e6
        total = sum(p.numel() for p in clip.parameters()) / 1e6
        g, _ = gflops(clip.visual, (torch.rand(1, 3, 224, 224),))
        rows.append(['CLIP ViT-B-16 image tower (224x224, its own input size)', f'{visual:.2f}', f'{g:.2f}', ''])
        rows.append(['CLIP ViT-B-16, image + text towers', f'{total:.2f}', '', ''])
    rep.block('sizes')
    rep.note(
        f'Input 1x3x{s}x{s}; the enhancer with the prior features of that input as extra inputs (priors excluded).'
    )
    rep.table(['network', 'params (M)', 'GFLOPs', 'published (M / G)'], rows)
    rep.block('sizes-presets')
    rep.table(['preset', 'options', 'parameters', 'target', 'GFLOPs', 'target'], preset_rows)
