"""Where the proof's networks lose structure (``deepspg-bench proof --analyse``, docs/DEEPSPG.md): the means over
seeds of :func:`~deepspg_basicsr.metrics.error_decomposition.decompose_error`, and (``--figure``) the crops
figure: two photos' flattest and most textured windows, from the input, each network and the ground truth.
"""

import os

import cv2
import numpy as np
from basicsr.utils import tensor2img

from ..metrics.error_decomposition import BLOCK, decompose_error

CROP = 96
MEASURES = [
    ('psnr', 'PSNR (dB)', 2),
    ('psnr_gt_mean', 'GT-mean PSNR (dB)', 2),
    ('exposure_stops', 'exposure error (stops, mean magnitude)', 2),
    ('colour_bias', 'colour bias (grey levels)', 2),
    ('flat_noise', 'noise in flat regions (grey levels; ground truth {gt})', 2),
    ('detail_ratio', 'detail kept in textured regions (1 = all)', 3),
    ('gradient_error', 'gradient error (grey levels)', 2),
]


def _windows(gt):
    """Top-left corners of the flattest and the most textured CROP x CROP windows of ``gt`` (uint8 RGB)."""
    y = cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY).astype(np.float64)
    local = cv2.blur(y * y, (CROP, CROP)) - cv2.blur(y, (CROP, CROP)) ** 2
    h = CROP // 2
    inner = local[h : y.shape[0] - h + 1, h : y.shape[1] - h + 1]
    mean = cv2.blur(y, (CROP, CROP))[h : y.shape[0] - h + 1, h : y.shape[1] - h + 1]
    flat = np.where(mean > 40, inner, np.inf)  # flat but not black: noise shows there
    return [np.unravel_index(np.argmin(flat), flat.shape), np.unravel_index(np.argmax(inner), inner.shape)]


def crops_figure(path, labels, outputs, pairs, photos=(0, 1)):
    """Save the crops figure (see the module docstring) to ``path``; ``outputs[label]``: seed-0 outputs."""
    rows = []
    for index in photos:
        _, lq, gt = pairs[index]
        gt_img = tensor2img(gt)[..., ::-1]
        lq_img = tensor2img(lq)[..., ::-1].astype(np.float64)
        shown = np.clip(lq_img * gt_img.mean() / max(lq_img.mean(), 1e-6), 0, 255).astype(np.uint8)
        for y, x in _windows(gt_img):
            cells = [shown] + [outputs[label][index] for label in labels] + [gt_img]
            crops = [
                cv2.resize(c[y : y + CROP, x : x + CROP], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
                for c in cells
            ]
            rows.append(np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in crops], 1))
    grid = np.concatenate(rows, 0)
    names = ['input (brightened)', *labels, 'ground truth']
    header = np.full((28, grid.shape[1], 3), 255, np.uint8)
    cell = grid.shape[1] // len(names)
    for i, name in enumerate(names):
        cv2.putText(header, name, (i * cell + 4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(np.concatenate([header, grid], 0), cv2.COLOR_RGB2BGR))


def analyse(rep, args, pairs, networks):
    """The ``--analyse`` report: one row per network, means ± std over its seeds.

    Args:
        rep (Report): Where the block goes.
        args (Namespace): ``figure`` (None: no figure) and ``block``.
        pairs (list): The test pairs (name, lq, gt) the outputs are of.
        networks (list): (label, [uint8 RGB outputs of one seed, ...] per seed), seed 0 first.
    """
    table, data = [], {}
    for label, per_seed_outputs in networks:
        per_seed = []
        for outs in per_seed_outputs:
            rows = [decompose_error(o, tensor2img(gt)[..., ::-1]) for o, (_, _, gt) in zip(outs, pairs)]
            # the exposure error as a magnitude: signed errors of different photos would cancel in the mean
            per_seed.append(
                {k: float(np.mean([abs(r[k]) if k == 'exposure_stops' else r[k] for r in rows])) for k in rows[0]}
            )
        data[label] = per_seed
        cells = [label, len(per_seed)]
        for key, _, digits in MEASURES:
            v = [p[key] for p in per_seed]
            cells.append(f'{np.mean(v):.{digits}f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.{digits}f}')
        table.append(cells)
    gt_noise = next(iter(data.values()))[0]['flat_noise_gt']
    rep.block(args.block if args.block != 'proof' else 'proof-analysis')
    rep.note(
        f'- `{rep.command}`: {len(pairs)} test photos, whole images; means ± std over the saved seeds; '
        f'{BLOCK}x{BLOCK} blocks, flattest / most textured 25 % by the ground truth'
    )
    rep.table(['network', 'seeds', *[m[1].format(gt=f'{gt_noise:.2f}') for m in MEASURES]], table)
    rep.data['analysis'] = data
    if args.figure:
        crops_figure(args.figure, [label for label, _ in networks], {k: v[0] for k, v in networks}, pairs)
        rep(f'- figure: `{os.path.relpath(args.figure)}`')
