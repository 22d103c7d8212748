"""ONNX Runtime backend: run a model written by ``deepspg-export`` (``pip install .[deploy]``).

:class:`OrtSession` wraps an ``onnxruntime.InferenceSession`` (providers chosen automatically:
CUDA where ``onnxruntime-gpu`` offers it, else CPU; thread count as an option; all graph
optimisations on). :class:`OrtEnhancer` gives ``deepspg-enhance --backend onnxruntime`` what
the PyTorch model gives it: whole images or seamless tiles, self-ensemble, the illumination and
reflectance maps.
"""

import json
import os

import torch

from ..utils.self_ensemble import self_ensemble
from ..utils.tiling import tiled_forward

__all__ = ['OrtSession', 'OrtEnhancer', 'choose_providers', 'read_metadata']


def _ort():
    try:
        import onnxruntime
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'the onnxruntime backend needs the onnxruntime package: pip install "deepspg-basicsr[deploy]" '
            '(or onnxruntime-gpu for CUDA)'
        ) from err
    return onnxruntime


def choose_providers(device='auto'):
    """ONNX Runtime execution providers: ``auto`` = CUDA where available, else CPU.

    Args:
        device (str): ``auto`` | ``cpu`` | ``cuda``.
    """
    available = _ort().get_available_providers()
    if device == 'cpu':
        return ['CPUExecutionProvider']
    if 'CUDAExecutionProvider' in available:
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']
    if device == 'cuda':
        raise RuntimeError(f'--device cuda: ONNX Runtime has no CUDAExecutionProvider (available: {available})')
    return ['CPUExecutionProvider']


def read_metadata(path):
    """The ``deepspg-export`` record of a model: ``<path>.json`` if present, else the model's
    ``metadata_props`` (key ``deepspg``); {} when neither exists."""
    side = path + '.json'
    if os.path.isfile(side):
        with open(side, encoding='utf-8') as f:
            return json.load(f)
    import onnx

    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    return json.loads(props['deepspg']) if 'deepspg' in props else {}


class OrtSession:
    """An ONNX Runtime session on tensors.

    Args:
        path (str): The ``.onnx`` file.
        threads (int): Intra-op threads; 0: ONNX Runtime's default (one per physical core).
            Default: 0.
        device (str): ``auto`` | ``cpu`` | ``cuda`` (see :func:`choose_providers`). Default: auto.
        optimization (str): Graph optimisation level ``all`` | ``extended`` | ``basic`` |
            ``none``. Default: ``all``.
        memory_arena (bool): ONNX Runtime's CPU memory arena (faster repeated runs; keeps the
            largest run's memory until the session is dropped). Default: True.
    """

    LEVELS = {'none': 'ORT_DISABLE_ALL', 'basic': 'ORT_ENABLE_BASIC', 'extended': 'ORT_ENABLE_EXTENDED'}

    def __init__(self, path, threads=0, device='auto', optimization='all', memory_arena=True):
        ort = _ort()
        if not os.path.isfile(path):
            raise FileNotFoundError(f'ONNX model not found: {path}')
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        level = self.LEVELS.get(optimization, 'ORT_ENABLE_ALL')
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = bool(memory_arena)
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=choose_providers(device))
        except Exception as err:
            raise RuntimeError(f'ONNX Runtime cannot load {path}: {err}') from err
        self.path = path
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata = read_metadata(path)

    @property
    def providers(self):
        return self.session.get_providers()

    def run(self, *inputs):
        """Run on float32 tensors (CPU); returns the outputs as float32 CPU tensors."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f'{self.path} takes {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}')
        feed = {n: t.detach().float().cpu().contiguous().numpy() for n, t in zip(self.input_names, inputs)}
        return [torch.from_numpy(o) for o in self.session.run(self.output_names, feed)]


class OrtEnhancer:
    """A whole-pipeline ONNX model (``deepspg-export`` without ``--enhancer-only``) as an enhancer.

    Args:
        path (str): The ``.onnx`` file.
        threads (int): Intra-op threads (0: ONNX Runtime's default). Default: 0.
        device (str): ``auto`` | ``cpu`` | ``cuda``. Default: auto.
    """

    def __init__(self, path, threads=0, device='auto'):
        self.session = OrtSession(path, threads=threads, device=device)
        if self.session.input_names != ['lq']:
            raise ValueError(
                f'{path} takes inputs {self.session.input_names}: an enhancer-only export; '
                '--backend onnxruntime needs the whole pipeline (deepspg-export without --enhancer-only)'
            )
        self.align = int(self.session.metadata.get('down_factor', 4))

    def run(self, x):
        """(1, 3, H, W) in [0, 1] -> (1, 9, H, W): out, illumination, reflectance (not clamped)."""
        return torch.cat(self.session.run(x), dim=1)

    def enhance_tensor(self, x, tile=0, overlap=64, self_ens=False, maps=False, progress=None, **_):
        """As :func:`deepspg_basicsr.enhance.enhance_tensor` (the prior runs per tile)."""

        def per_tile(t):
            return self_ensemble(self.run, t) if self_ens else self.run(t)

        if tile <= 0 or max(x.shape[-2:]) <= tile:
            res = per_tile(x)
            if progress is not None:
                progress(1, 1)
        else:
            res = tiled_forward(per_tile, x, tile, overlap, align=self.align, progress=progress)
        out = {'out': res[:, :3].clamp_(0, 1)}
        if maps:
            out['illumination'], out['reflectance'] = res[:, 3:6], res[:, 6:9]
        return out
