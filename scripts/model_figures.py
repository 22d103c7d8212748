"""The shipped model's pictures (docs/MODEL.md, README): before / after on unseen photos, and the same
photos under heavier sensor noise than the training darkening.

    python scripts/model_figures.py [--weights deepspg-espnetv2-photos] [--photos 4]

Writes ``docs/figures/model_before_after.jpg`` (per unseen photo: the low-light input, the input
brightened for display only, the enhanced output, the ground truth) and
``docs/figures/model_heavy_noise.jpg`` (the same photos darkened again with far heavier sensor noise
than the training darkening draws: peak 100 photons at linear 1.0, training 1,000 to 8,000; read
noise 0.004, training at most 0.002).
"""

import argparse
import os

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, 'datasets', 'photos', 'LOL-v1', 'eval15')
FIGURES = os.path.join(ROOT, 'docs', 'figures')
CELL = (360, 240)  # width, height of one picture in the grid
HEAVY = {'exposure': 0.03, 'peak': 100.0, 'read_sigma': 0.004}


def brightened(low, reference_mean):
    """``low`` scaled to ``reference_mean`` (display only: no denoising, no colour correction)."""
    gain = reference_mean / max(float(low.mean()), 1e-6)
    return np.clip(low.astype(np.float64) * gain, 0, 255).astype(np.uint8)


def grid(rows, labels):
    """Rows of BGR pictures -> one image with a header line of ``labels``."""
    lines = []
    for cells in rows:
        cells = [cv2.resize(c, CELL, interpolation=cv2.INTER_AREA) for c in cells]
        lines.append(np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in cells], 1))
    body = np.concatenate(lines, 0)
    header = np.full((26, body.shape[1], 3), 255, np.uint8)
    for k, text in enumerate(labels):
        cv2.putText(header, text, (k * (CELL[0] + 4) + 6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
    return np.concatenate([header, body], 0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', default='deepspg-espnetv2-photos', help='known name or weights file')
    parser.add_argument('--photos', type=int, default=4, help='how many unseen photos (every n-th by name)')
    args = parser.parse_args(argv)

    from deepspg_basicsr import DeepSPGEnhancer
    from deepspg_basicsr.data.photo_pairs import darken
    from deepspg_basicsr.metrics import calculate_psnr_llie

    names = sorted(os.listdir(os.path.join(PHOTOS, 'low')))
    chosen = [names[int(i * len(names) / args.photos)] for i in range(args.photos)]
    enhancer = DeepSPGEnhancer(weights=args.weights, device='cpu')
    print(f'model: {enhancer.describe()}')
    rows, heavy_rows = [], []
    for name in chosen:
        low = cv2.imread(os.path.join(PHOTOS, 'low', name))
        gt = cv2.imread(os.path.join(PHOTOS, 'high', name))
        out = enhancer.enhance(low)
        print(f'{name}: input {calculate_psnr_llie(low, gt):.2f} dB, output {calculate_psnr_llie(out, gt):.2f} dB')
        rows.append([low, brightened(low, gt.mean()), out, gt])
        noisy = darken(gt, rng=np.random.default_rng(0), **HEAVY)
        out_noisy = enhancer.enhance(noisy)
        print(f'{name}, heavy noise: output {calculate_psnr_llie(out_noisy, gt):.2f} dB')
        heavy_rows.append([noisy, brightened(noisy, gt.mean()), out_noisy, gt])
    labels = ['low-light input', 'input brightened (display only)', 'DeepSPG (shipped model)', 'ground truth']
    for file, picture in (
        ('model_before_after.jpg', grid(rows, labels)),
        ('model_heavy_noise.jpg', grid(heavy_rows, labels)),
    ):
        path = os.path.join(FIGURES, file)
        cv2.imwrite(path, picture, [cv2.IMWRITE_JPEG_QUALITY, 88])
        print(f'wrote {path} ({picture.shape[1]}x{picture.shape[0]})')


if __name__ == '__main__':
    main()
