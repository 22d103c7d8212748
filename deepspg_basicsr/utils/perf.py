"""Speed options of the models (the ``perf:`` section of an option file).

Options that change results only by float rounding (``channels_last: auto``, ``fold_prior_bn``)
are on by default; the others are off. Each changes results at most within the tolerance stated here
(checked by ``tests/test_perf_levers.py``; measured in ``docs/BENCHMARKS.md``):

* ``amp``: ``none`` (default) | ``bf16`` | ``fp16``. Automatic mixed precision for the enhancer
  and the frozen priors, in training and inference (``torch.autocast``). ``bf16`` works on CPU
  (fast where the CPU has AVX512-BF16 / AMX) and on CUDA (Ampere and newer); ``fp16`` on CUDA
  only, with a gradient scaler in training. Losses are computed in float32, and on the CPU the
  CLIP prior of the multimodal loss stays in float32 (under bf16 autocast the backward of
  ViT-B-16 ran 5-6x slower there). Tolerance (tests/test_perf_levers.py, a small synthetic pair,
  random weights): PSNR to the target within 0.1 dB of float32 (measured 0.005 dB), and at least
  50 dB PSNR between the bf16 and float32 outputs (measured 66 dB).
* ``channels_last``: ``auto`` (default) | ``false`` | ``true`` (enhancer and priors) | a list of
  the parts to convert, ``enhancer``, ``prior``, ``inference``. Stores weights and inputs in NHWC
  order. ``inference`` converts only the enhancer's *input* when no gradient is recorded
  (validation, test, ``deepspg-enhance``; the weights and training stay NCHW). ``auto`` is
  ``[prior, inference]`` on the CPU (measured there: 600x400, 2 threads, HRNet-W48 prior 18 %
  faster with BatchNorm folded, enhancer 19 % faster; ``docs/BENCHMARKS.md``) and ``false`` on
  CUDA (not measured there). Same results in float32 up to rounding: tested within 1e-5
  (measured 1e-7 on the enhancer's output, 1e-6 relative on the prior's features and logits).
* ``fold_prior_bn``: ``true`` (default) | ``false``. Folds each BatchNorm of the frozen
  segmentation prior into the convolution before it, once, when the model is built
  (:func:`~deepspg_basicsr.deploy.batchnorm_fold.fold_batchnorm`; the prior is frozen and always
  in eval mode, so the BatchNorm is a fixed affine map). Same function up to rounding (measured
  6.6e-7 on HRNet-W48's features). ``false`` keeps MMSegmentation's modules as built, e.g. to
  reproduce outputs bit for bit.
* ``compile``: ``false`` (default) | ``true`` | a dict of ``torch.compile`` keyword arguments.
  Compiles the enhancer in place (``nn.Module.compile``; state-dict keys unchanged). The first
  iterations are slow (compilation), and every new input size recompiles unless ``dynamic``.
"""

import copy
from contextlib import nullcontext

import torch

__all__ = ['PERF_DEFAULTS', 'parse_perf_options', 'autocast', 'to_channels_last', 'compile_module', 'grad_scaler']

PERF_DEFAULTS = {'amp': 'none', 'channels_last': 'auto', 'compile': False, 'fold_prior_bn': True}
AMP_DTYPES = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
CHANNELS_LAST_PARTS = ('enhancer', 'prior', 'inference')
#: What ``channels_last: auto`` means on each device type (measured faster on the CPU only).
CHANNELS_LAST_AUTO = {'cpu': ['prior', 'inference']}


def parse_perf_options(opt, device_type='cpu'):
    """Validate the ``perf`` options and fill in the defaults (the input is not mutated).

    Args:
        opt (dict | None): The ``perf`` section of the options, e.g. ``{'amp': 'bf16'}``.
        device_type (str): ``cpu`` or ``cuda``: ``fp16`` needs CUDA.

    Returns:
        dict: ``amp`` (str), ``channels_last`` (list of parts, possibly empty; ``auto`` resolved
        for ``device_type``), ``compile`` (dict of ``torch.compile`` keyword arguments, or None
        when off), ``fold_prior_bn`` (bool).
    """
    opt = copy.deepcopy(dict(opt or {}))
    unknown = sorted(set(opt) - set(PERF_DEFAULTS))
    if unknown:
        raise ValueError(f'unknown perf option(s) {unknown}; known: {sorted(PERF_DEFAULTS)}')
    out = dict(PERF_DEFAULTS, **opt)

    amp = 'none' if out['amp'] in (None, False) else str(out['amp']).lower()
    if amp not in AMP_DTYPES:
        raise ValueError(f'perf.amp must be one of {list(AMP_DTYPES)}, got {out["amp"]!r}')
    if amp == 'fp16' and device_type != 'cuda':
        raise ValueError('perf.amp: fp16 needs CUDA; on CPU use bf16')
    out['amp'] = amp

    parts = out['channels_last']
    if isinstance(parts, str) and parts.lower() == 'auto':
        parts = list(CHANNELS_LAST_AUTO.get(device_type, []))
    elif isinstance(parts, bool) or parts is None:
        parts = ['enhancer', 'prior'] if parts else []
    parts = [str(p) for p in ([parts] if isinstance(parts, str) else parts)]
    bad = [p for p in parts if p not in CHANNELS_LAST_PARTS]
    if bad:
        raise ValueError(
            f"perf.channels_last: unknown part(s) {bad}; use 'auto', a bool or a list of {CHANNELS_LAST_PARTS}"
        )
    out['channels_last'] = parts

    if not isinstance(out['fold_prior_bn'], bool):
        raise ValueError(f'perf.fold_prior_bn must be true or false, got {out["fold_prior_bn"]!r}')

    comp = out['compile']
    if isinstance(comp, dict):
        out['compile'] = dict(comp)
    elif comp is True:
        out['compile'] = {}
    elif comp in (False, None):
        out['compile'] = None
    else:
        raise ValueError(f'perf.compile must be a bool or a dict of torch.compile arguments, got {comp!r}')
    return out


def autocast(device_type, amp):
    """``torch.autocast`` for ``amp`` (``none`` | ``bf16`` | ``fp16``), or a null context.

    Args:
        device_type (str): ``cpu`` or ``cuda``.
        amp (str): As in :func:`parse_perf_options`.
    """
    dtype = AMP_DTYPES[amp]
    return nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def to_channels_last(obj, enabled=True):
    """A 4-D tensor or a module in ``torch.channels_last`` memory format (``obj`` when not enabled).

    Modules are converted in place (their 4-D parameters and buffers); 4-D tensors are copied
    when not already in that format; anything else is returned as it is.
    """
    if not enabled:
        return obj
    if isinstance(obj, torch.nn.Module):
        return obj.to(memory_format=torch.channels_last)
    if torch.is_tensor(obj) and obj.dim() == 4:
        return obj.contiguous(memory_format=torch.channels_last)
    return obj


def compile_module(module, compile_kwargs):
    """Compile ``module`` in place with ``torch.compile`` (no-op when ``compile_kwargs`` is None).

    ``nn.Module.compile`` keeps the module object and its state-dict keys, so saving, loading
    and EMA are unchanged.
    """
    if compile_kwargs is not None:
        module.compile(**compile_kwargs)
    return module


def grad_scaler(device_type, amp):
    """A gradient scaler for fp16 training on CUDA, else None (bf16 and float32 need none)."""
    if amp == 'fp16' and device_type == 'cuda':
        return torch.amp.GradScaler('cuda')
    return None
