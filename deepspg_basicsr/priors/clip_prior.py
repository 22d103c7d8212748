"""Frozen CLIP text/image prior from open_clip, with tensor-side preprocessing."""

import copy
import logging
import os
import zipfile
from os import path as osp

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.checkpoint import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint_file,
    load_state_dict_strict,
)
from ..weights import known_weights_entry, locate_weights

logger = logging.getLogger('basicsr')

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_CONFIG_DIR = osp.join(osp.dirname(__file__), 'model_configs')


def _register_project_configs():
    """Make the project's small CLIP configs (e.g. ``DeepSPG-CLIP-tiny``) known to open_clip."""
    import open_clip

    if 'DeepSPG-CLIP-tiny' not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR)


#: Entries of TorchScript archives that are not weights of open_clip's model: OpenAI's settings, and the
#: attention mask a trace of open_clip's own model stores (a non-persistent buffer there).
_OPENAI_EXTRA_KEYS = ('input_resolution', 'context_length', 'vocab_size', 'attn_mask')


def is_torchscript_archive(path):
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``), as OpenAI publishes CLIP."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith('/constants.pkl') for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _load_weights_file(path, allow_unsafe, trusted=False):
    """The state dict of a weights file: safetensors, ``torch.save`` (``weights_only`` unless
    ``allow_unsafe``) or a TorchScript archive (only a ``trusted`` file, i.e. sha256-verified known
    weights, or with ``allow_unsafe``)."""
    if str(path).endswith('.safetensors'):
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as err:
            raise CheckpointError(f'cannot read checkpoint {path}: {err}') from err
    if is_torchscript_archive(path):
        if not (trusted or allow_unsafe):
            raise CheckpointError(
                f'{path} is a TorchScript archive (as OpenAI publishes CLIP): give it by its known name (e.g. '
                'prior.clip_pretrained: clip-vit-b16-openai, checksum-verified) or, if you trust the file, set '
                'allow_unsafe_checkpoint: true'
            )
        state = torch.jit.load(path, map_location='cpu').state_dict()
        return {k: v for k, v in state.items() if k not in _OPENAI_EXTRA_KEYS}
    return load_checkpoint_file(path, allow_unsafe=allow_unsafe)


def build_open_clip(model_name, pretrained=None, quick_gelu=None, allow_unsafe_checkpoint=False):
    """Build an open_clip model.

    Args:
        model_name (str): open_clip model name, e.g. ``ViT-B-16``.
        pretrained (str | None): A local weights file (``.bin``/``.pt``/``.pth``/``.safetensors``,
            a state dict), a known weights name (``clip-vit-b16-openai``: OpenAI's file, downloaded
            once into the weights cache and sha256-verified, :mod:`deepspg_basicsr.weights`), an
            open_clip tag such as ``openai`` (needs the network or the hub cache), or None for
            random weights.
        quick_gelu (bool | None): QuickGELU activations, as OpenAI's weights need. None: what
            open_clip's pretrained table says for (model_name, 'openai') when loading a file.
        allow_unsafe_checkpoint (bool): ``weights_only=False`` for a trusted local file.

    Returns:
        nn.Module: The CLIP model (fp32, CPU, eval).
    """
    import open_clip

    _register_project_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f'unknown open_clip model {model_name!r}; known: {open_clip.list_models()[:20]} ...')
    entry = known_weights_entry(pretrained)
    trusted = False
    if entry is not None and not osp.isfile(pretrained):
        fragment = entry.options.get('prior', {})
        if fragment.get('clip_model', model_name) != model_name:
            raise ValueError(
                f'prior.clip_pretrained {entry.name!r} holds {fragment["clip_model"]} weights, but prior.clip_model is '
                f'{model_name!r} (set prior.clip_model: {fragment["clip_model"]})'
            )
        resolved = locate_weights(pretrained, kind='clip')
        logger.info(
            'CLIP prior %s: weights %s (known weights %s), sha256 %s',
            model_name,
            resolved.path,
            entry.name,
            resolved.sha256,
        )
        pretrained, trusted = resolved.path, True
        if quick_gelu is None:
            quick_gelu = fragment.get('clip_quick_gelu')
    is_file = pretrained is not None and (
        osp.isfile(pretrained) or osp.sep in str(pretrained) or '.' in str(pretrained)
    )
    if is_file or pretrained is None:
        if quick_gelu is None:
            cfg = open_clip.pretrained.get_pretrained_cfg(model_name, 'openai') or {}
            quick_gelu = bool(cfg.get('quick_gelu', False)) and pretrained is not None
        model = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=bool(quick_gelu))
        if pretrained is not None:
            state = extract_state_dict(_load_weights_file(pretrained, allow_unsafe_checkpoint, trusted), pretrained)
            load_state_dict_strict(model, state, pretrained)
        return model
    # A tag: open_clip downloads (or reads the hub cache). compat sets HF_HUB_OFFLINE when the
    # hub is unreachable, so an uncached tag fails at once instead of retrying for a minute.
    try:
        return open_clip.create_model(model_name, pretrained=pretrained)
    except Exception as err:
        offline = os.environ.get('HF_HUB_OFFLINE', '0') not in ('0', '', 'false', 'False')
        raise RuntimeError(
            f'cannot get CLIP weights for {model_name!r} with tag {pretrained!r}'
            f'{" (no network: HF_HUB_OFFLINE is set)" if offline else ""}: {type(err).__name__}: {err}. '
            'Download the weights once on a machine with network (e.g. open_clip_pytorch_model.bin '
            f'of {model_name} {pretrained}) and pass the local file path as prior.clip_pretrained.'
        ) from err


class CLIPPrior(nn.Module):
    """Frozen open_clip model with cached prompt embeddings.

    Preprocessing is done on tensors and is differentiable: bilinear (antialiased) resize of the
    whole image to the model's input size (no crop: the loss should see the whole image), then
    CLIP's normalisation.

    Args:
        model_name (str): open_clip model name. Default: ``ViT-B-16``.
        pretrained (str | None): Local weights file, open_clip tag, or None (random weights,
            with a loud warning).
        prompts (list[str]): Prompts whose embeddings are computed once and cached.
        quick_gelu (bool | None): See :func:`build_open_clip`.
        allow_unsafe_checkpoint (bool): ``weights_only=False`` for a trusted local file.
        random_seed (int): Seed of the random weights when ``pretrained`` is None (forked RNG).
            Default: 0.
    """

    def __init__(
        self,
        model_name='ViT-B-16',
        pretrained='openai',
        prompts=('low-light image', 'high-light image'),
        quick_gelu=None,
        allow_unsafe_checkpoint=False,
        random_seed=0,
    ):
        super().__init__()
        import open_clip

        self.model_name = model_name
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_seed)
            self.model = build_open_clip(model_name, pretrained, quick_gelu, allow_unsafe_checkpoint)
        self.random_init = pretrained is None
        if self.random_init:
            logger.warning(
                '!!! CLIP PRIOR %s HAS RANDOM WEIGHTS: no pretrained weights given. The multimodal '
                'loss is meaningless; results are NOT comparable to the paper. Set '
                'prior.clip_pretrained to a local weights file. !!!',
                model_name,
            )
        self.tokenizer = open_clip.get_tokenizer(model_name)
        size = self.model.visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.register_buffer('mean', torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)
        self.prompts = list(prompts)
        self.register_buffer('text_features', self.encode_text(self.prompts), persistent=False)

    def train(self, mode=True):
        """Frozen: always stays in eval mode."""
        return super().train(False)

    @torch.no_grad()
    def encode_text(self, prompts):
        """L2-normalised text embeddings, shape (len(prompts), D)."""
        tokens = self.tokenizer(list(prompts)).to(self.mean.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def text_embeddings(self, prompts):
        """Embeddings of ``prompts``, from the cache when they are the cached prompts."""
        if list(prompts) == self.prompts:
            return self.text_features
        return self.encode_text(prompts)

    def preprocess(self, x):
        """(B, 3, H, W) RGB in [0, 1] -> (B, 3, S, S) CLIP input, differentiably."""
        x = F.interpolate(x, size=self.image_size, mode='bilinear', align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def encode_image(self, x):
        """L2-normalised image embeddings of RGB images in [0, 1], shape (B, D); differentiable."""
        return F.normalize(self.model.encode_image(self.preprocess(x)).float(), dim=-1)

    def token_embeddings(self, prompts):
        """Word-level (token) embeddings of the text transformer's last layer and the token mask.

        Returns:
            tuple[Tensor, Tensor]: (N, L, W) token features after the final LayerNorm and
            (N, L) bool mask of real tokens (up to and including the end-of-text token).
        """
        m = self.model
        tokens = self.tokenizer(list(prompts)).to(self.mean.device)
        with torch.no_grad():
            x = m.token_embedding(tokens) + m.positional_embedding[: tokens.shape[1]]
            x = m.transformer(x, attn_mask=m.attn_mask)
            x = m.ln_final(x)
        eot = tokens.argmax(dim=-1)
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None] <= eot[:, None]
        return x.float(), mask


def build_clip_prior(opt):
    """Build a :class:`CLIPPrior` from an options dict (not mutated).

    Keys: ``clip_model``, ``clip_pretrained``, ``clip_quick_gelu``, ``prompts``
    (``[negative, positive]``), ``allow_unsafe_checkpoint``, ``random_seed``.
    """
    opt = copy.deepcopy(opt or {})
    return CLIPPrior(
        model_name=opt.get('clip_model', 'ViT-B-16'),
        pretrained=opt.get('clip_pretrained', 'openai'),
        prompts=opt.get('prompts', ('low-light image', 'high-light image')),
        quick_gelu=opt.get('clip_quick_gelu'),
        allow_unsafe_checkpoint=opt.get('allow_unsafe_checkpoint', False),
        random_seed=opt.get('random_seed', 0),
    )
