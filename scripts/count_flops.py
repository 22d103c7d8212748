"""Parameters and GFLOPs of the DeepSPG presets against the published sizes (not a test).

Protocol (Retinexformer's): fvcore ``FlopCountAnalysis(net, 1x3x256x256).total() / 1024**3``; the
frozen priors are excluded, so the network is counted with the HRNet-W48 branch features it
receives at that input size (48 / 96 / 192 channels at 64x64, 32x32, 16x16) as extra inputs. One
enhancement pass is counted (the coarse-to-fine pass repeats it at inference when enabled).

Usage: python scripts/count_flops.py [--size 256]
"""

import argparse
import platform

import deepspg_basicsr  # noqa: F401  (shims before basicsr)
from deepspg_basicsr.archs.deepspg_arch import DeepSPG
from deepspg_basicsr.utils.complexity import count_deepspg

import torch

PRESETS = {
    'base': ({'num_feat': 16, 'illum_feat': 16}, 0.55e6, 6.91),
    'large': ({'num_feat': 32, 'illum_feat': 32}, 2.13e6, 26.03),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=256)
    args = parser.parse_args()
    print(f'machine: {platform.machine()} {platform.processor() or ""}; torch {torch.__version__}')
    print(f'input 1x3x{args.size}x{args.size}, fvcore total / 1024**3, priors excluded')
    print(f'{"preset":<7}{"params (M)":>12}{"target":>9}{"diff":>8}{"GFLOPs":>9}{"target":>9}{"diff":>8}')
    for name, (kwargs, p_target, g_target) in PRESETS.items():
        params, gflops = count_deepspg(DeepSPG(**kwargs), args.size)
        print(
            f'{name:<7}{params / 1e6:>12.3f}{p_target / 1e6:>9.2f}{params / p_target - 1:>+8.1%}'
            f'{gflops:>9.2f}{g_target:>9.2f}{gflops / g_target - 1:>+8.1%}'
        )


if __name__ == '__main__':
    main()
