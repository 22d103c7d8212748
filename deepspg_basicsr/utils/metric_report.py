"""Benchmark reports: per-image and mean metrics as a JSON file and as a table in the log.

:class:`MetricReport` collects, for one validation / test run over one data set, every metric of
every image, and optionally the same metrics of the input itself (low-light input against the
ground truth: the reference users compare against). It renders a fixed-width table for the log
(:meth:`MetricReport.table`) and writes a JSON file (:meth:`MetricReport.write_json`) holding the
numbers, the protocol they were measured with, the options and the software / machine.

JSON layout (``format: deepspg-metrics/1``)::

    {"format": "deepspg-metrics/1", "dataset": "LOLv1_test", "iter": 1000 or "<name>" (test),
     "num_images": 15, "metrics": ["psnr", "ssim", ...],
     "mean": {"psnr": 26.8, ...}, "input_mean": {"psnr": 7.77, ...} or null,
     "images": [{"name": "1", "height": 400, "width": 600,
                 "metrics": {"psnr": ...}, "input_metrics": {"psnr": ...} or null}, ...],
     "protocol": {...}, "option_file": {"path": ..., "sha256": ...} or null, "options": {...},
     "environment": {...}, "created": "2025-01-01T12:00:00+00:00"}

Non-finite values (the PSNR of identical images) are written as the strings ``"inf"``,
``"-inf"`` or ``"nan"`` (strict JSON has no such numbers); a metric that could not be computed
for an image (a full-reference metric on an image without ground truth) is ``null`` and left
out of the mean.
"""

import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import sys
import tempfile

__all__ = [
    'FORMAT',
    'NO_REFERENCE_METRICS',
    'MetricReport',
    'compute_metrics',
    'environment_info',
    'metric_protocol',
    'option_file_info',
    'report_path',
    'safe_name',
]

FORMAT = 'deepspg-metrics/1'
#: Metric types computed from the output alone (no ground truth needed).
NO_REFERENCE_METRICS = frozenset({'calculate_niqe', 'calculate_niqe_llie', 'calculate_brightness_llie'})
#: Definition of the GT-mean correction, written into every report.
GT_MEAN_DEFINITION = (
    'output (uint8, BGR) scaled by mean(grey(gt)) / mean(grey(output)) (OpenCV BGR2GRAY), clipped to [0, 255], '
    'not re-quantised; then the metric against gt'
)


def _finite_or_str(value):
    if value is None:
        return None
    value = float(value)
    if math.isfinite(value):
        return value
    return 'nan' if math.isnan(value) else ('inf' if value > 0 else '-inf')


def _mean(values):
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _fmt(value, digits):
    return '-' if value is None else f'{value:.{digits}f}'


def safe_name(name):
    """``name`` with every character other than ``A-Za-z0-9._-`` replaced by ``_`` (file names)."""
    return re.sub(r'[^A-Za-z0-9._-]', '_', str(name)) or '_'


class MetricReport:
    """Per-image and mean metrics of one run over one data set.

    Args:
        dataset (str): Data set name (``datasets.<phase>.name``).
        metric_names (list[str]): Metric names in display order (``val.metrics`` keys).
        current_iter (int | str): The training iteration, or the run name in a test.
    """

    def __init__(self, dataset, metric_names, current_iter=None):
        self.dataset = str(dataset)
        self.metric_names = list(metric_names)
        self.current_iter = current_iter
        self.images = []

    def add(self, name, metrics, input_metrics=None, size=None):
        """Add one image.

        Args:
            name (str): Image name (file stem).
            metrics (dict[str, float | None]): Metric name -> value for the enhanced output.
            input_metrics (dict[str, float | None] | None): The same for the input (lq vs gt).
            size (tuple[int, int] | None): (height, width) of the image.
        """
        self.images.append(
            {
                'name': str(name),
                'height': None if size is None else int(size[0]),
                'width': None if size is None else int(size[1]),
                'metrics': {k: metrics.get(k) for k in self.metric_names},
                'input_metrics': None
                if input_metrics is None
                else {k: input_metrics.get(k) for k in self.metric_names},
            }
        )

    def mean(self, key='metrics'):
        """Mean of each metric over the images that have it (None where none has it).

        Args:
            key (str): 'metrics' (the outputs) or 'input_metrics' (the inputs).

        Returns:
            dict[str, float | None] | None: None for 'input_metrics' when no image has them.
        """
        rows = [img[key] for img in self.images if img[key] is not None]
        if key == 'input_metrics' and not rows:
            return None
        return {k: _mean(row.get(k) for row in rows) for k in self.metric_names}

    def table(self, digits=4):
        """The log table: a header, one row per image, then ``mean`` and ``input (lq vs gt)``.

        Args:
            digits (int): Decimals of every value. Default: 4 (as BasicSR's validation log).

        Returns:
            str: Lines joined with newlines, starting with a title line.
        """
        header = ['image'] + self.metric_names
        rows = [[img['name']] + [_fmt(img['metrics'][k], digits) for k in self.metric_names] for img in self.images]
        summary = [['mean'] + [_fmt(v, digits) for v in self.mean().values()]]
        input_mean = self.mean('input_metrics')
        if input_mean is not None:
            summary.append(['input (lq vs gt)'] + [_fmt(v, digits) for v in input_mean.values()])
        widths = [max(len(r[i]) for r in [header] + rows + summary) for i in range(len(header))]

        def line(cells):
            return ' | '.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        rule = '-+-'.join('-' * w for w in widths)
        title = f'Metrics of {self.dataset} ({len(self.images)} images, iter {self.current_iter}):'
        return '\n'.join([title, line(header), rule] + [line(r) for r in rows] + [rule] + [line(r) for r in summary])

    def to_dict(self, protocol=None, options=None, option_file=None, environment=None):
        """The JSON document (see the module docstring); values made strict-JSON safe."""

        def clean(d):
            return None if d is None else {k: _finite_or_str(v) for k, v in d.items()}

        input_mean = self.mean('input_metrics')
        return {
            'format': FORMAT,
            'dataset': self.dataset,
            'iter': self.current_iter,
            'num_images': len(self.images),
            'metrics': self.metric_names,
            'mean': clean(self.mean()),
            'input_mean': clean(input_mean),
            'images': [
                dict(img, metrics=clean(img['metrics']), input_metrics=clean(img['input_metrics']))
                for img in self.images
            ],
            'protocol': protocol,
            'option_file': option_file,
            'options': options,
            'environment': environment if environment is not None else environment_info(),
            'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        }

    def write_json(self, path, **kwargs):
        """Write :meth:`to_dict` (``kwargs`` passed on) to ``path`` atomically; returns the dict."""
        doc = self.to_dict(**kwargs)
        text = json.dumps(doc, indent=2, allow_nan=False, default=str)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                f.write(text + '\n')
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return doc


def metric_protocol(metric_opts, self_ensemble=False, report_input=True, extra=None):
    """How the numbers were measured, for the report.

    Args:
        metric_opts (dict): ``val.metrics`` (name -> metric options with ``type``).
        self_ensemble (bool): Whether outputs are x8 self-ensembles.
        report_input (bool): Whether the input's own metrics are reported.
        extra (dict | None): More entries (e.g. the model's padding).

    Returns:
        dict: ``metrics`` (name -> type, crop_border, gt_mean, channels and every other option),
        ``output_clamp``, ``quantisation``, ``gt_mean_definition``, ``self_ensemble``,
        ``input_reference``.
    """
    metrics = {}
    for name, opt in (metric_opts or {}).items():
        opt = dict(opt)
        metric_type = opt.pop('type', None)
        if metric_type == 'calculate_brightness_llie':
            channels = 'grey' if opt.pop('convert_to', 'gray') == 'gray' else 'mean of RGB'
        elif metric_type in NO_REFERENCE_METRICS:
            channels = 'grey' if opt.pop('convert_to', 'y') == 'gray' else 'Y (YCbCr)'
        else:
            channels = 'Y (YCbCr)' if opt.pop('test_y_channel', False) else 'RGB'
        entry = {
            'type': metric_type,
            'crop_border': opt.pop('crop_border', 0),
            'gt_mean': bool(opt.pop('gt_mean', False)),
            'channels': channels,
            'reference': 'none' if metric_type in NO_REFERENCE_METRICS else 'ground truth',
        }
        entry.update(opt)
        metrics[name] = entry
    protocol = {
        'metrics': metrics,
        'output_clamp': [0.0, 1.0],
        'quantisation': 'uint8: round(clamp(x, 0, 1) * 255), as basicsr.utils.tensor2img, before every metric',
        'gt_mean_definition': GT_MEAN_DEFINITION,
        'self_ensemble': bool(self_ensemble),
        'input_reference': 'lq vs gt, same metrics and quantisation' if report_input else None,
    }
    protocol.update(extra or {})
    return protocol


def option_file_info(argv=None):
    """The option file of this run, read from the command line (``-opt`` / ``--opt``).

    Returns:
        dict | None: ``path`` (absolute) and ``sha256`` of the file, or None when no option file
        is on the command line.
    """
    argv = list(sys.argv if argv is None else argv)
    path = None
    for i, arg in enumerate(argv):
        if arg in ('-opt', '--opt') and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith(('-opt=', '--opt=')):
            path = arg.split('=', 1)[1]
    if path is None:
        return None
    info = {'path': os.path.abspath(path), 'sha256': None}
    try:
        with open(path, 'rb') as f:
            info['sha256'] = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        pass
    return info


def cpu_model():
    """The CPU's model name on Linux (``/proc/cpuinfo``), else None."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def environment_info():
    """Software versions and the machine: python, platform, CPU, torch, CUDA / GPUs, basicsr, this package."""
    import numpy as np
    import torch

    env = {
        'python': platform.python_version(),
        'platform': platform.platform(),
        'processor': cpu_model() or platform.processor() or platform.machine(),
        'cpu_count': os.cpu_count(),
        'torch': torch.__version__,
        'torch_threads': torch.get_num_threads(),
        'numpy': np.__version__,
        'cuda': torch.version.cuda if torch.cuda.is_available() else None,
        'gpus': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else [],
    }
    for dist in ('torchvision', 'basicsr', 'mmsegmentation', 'mmcv', 'mmcv-lite', 'open_clip_torch', 'opencv-python'):
        try:
            env[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            env[dist] = None
    from ..version import __version__

    env['deepspg_basicsr'] = __version__
    return env


def report_path(opt, dataset, current_iter):
    """Where the JSON report of a run goes (None when the options name no output folder).

    Training: ``<experiments_root>/metrics/<dataset>_<iter>.json``; test:
    ``<results_root>/metrics_<dataset>.json``.
    """
    paths = opt.get('path') or {}
    if opt.get('is_train') and paths.get('experiments_root'):
        name = f'{safe_name(dataset)}_{safe_name(current_iter)}.json'
        return os.path.join(paths['experiments_root'], 'metrics', name)
    if not opt.get('is_train') and paths.get('results_root'):
        return os.path.join(paths['results_root'], f'metrics_{safe_name(dataset)}.json')
    return None


def compute_metrics(metric_opts, img, img2=None):
    """Every metric of ``val.metrics`` on one image, as BasicSR's validation computes them.

    Args:
        metric_opts (dict): ``val.metrics`` (name -> options with ``type``; not modified).
        img (ndarray): The image scored, uint8 HWC BGR (``basicsr.utils.tensor2img``).
        img2 (ndarray | None): The ground truth, same layout, or None.

    Returns:
        dict[str, float | None]: Metric name -> value; None for a full-reference metric when
        ``img2`` is None.
    """
    from basicsr.metrics import calculate_metric

    values = {}
    for name, opt in metric_opts.items():
        if img2 is None and opt.get('type') not in NO_REFERENCE_METRICS:
            values[name] = None
            continue
        values[name] = float(calculate_metric({'img': img, 'img2': img2}, opt))
    return values
