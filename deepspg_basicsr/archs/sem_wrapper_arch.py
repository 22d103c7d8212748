"""Semantic guidance for any BasicSR network: SEM blocks inserted by forward hooks (SKF's plug-in).

SKF adds its Semantic Embedding module to existing enhancement networks at several decoder
scales. :class:`SemanticGuidedWrapper` does this for any registered BasicSR arch without editing
its code: it builds the host with BasicSR's ``build_network`` and registers a forward hook on
each named submodule; the hook replaces the submodule's output ``y`` by ``SEM(y, sem)``, where
``sem`` is the prior's feature branch chosen for that insertion point.
"""

import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..utils.checkpoint import extract_state_dict, load_checkpoint_file, load_state_dict_strict
from ..utils.tiling import crop_to, pad_to_multiple
from .sem_block import SemanticEmbeddingModule

_CTX = '_deepspg_sem_ctx'


def _sem_hook(module, args, output):
    """Forward hook of an insertion point: ``output`` -> ``SEM(output, semantic branch)``."""
    ctx = module.__dict__.get(_CTX)
    if ctx is None:
        raise RuntimeError(
            'SemanticGuidedWrapper: the host ran without semantic features; call the wrapper, '
            'forward(x, sem_feats), not the host directly'
        )
    sem, feat = ctx
    return sem(output, feat)


def _readable_names(host, max_depth=2, limit=50):
    """Submodule names worth listing in an error: those at most ``max_depth`` levels deep."""
    names = [name for name, _ in host.named_modules() if name and name.count('.') < max_depth]
    more = f', ... ({len(names) - limit} more)' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


@ARCH_REGISTRY.register()
class SemanticGuidedWrapper(nn.Module):
    """Any BasicSR network with Semantic Embedding Modules after chosen submodules.

    The output of each submodule named in ``insert_after`` (a name of
    ``host.named_modules()``, e.g. ``body.6`` or ``conv_body``) is replaced by
    ``SEM(output, sem_feats[sem_branches[i]])``; the SEM resizes the semantic branch to that
    output's resolution (bilinear). The SEM width is the submodule's output channels, found by
    a dry run of the host on a small dummy input at construction (in eval mode, without
    gradients), or given by ``channels``. A submodule must return one (B, C, H, W) tensor and
    run once per forward (shared modules such as RRDBNet's ``lrelu`` are refused).

    With ``zero_init`` (default) every SEM starts as an exact identity, so the wrapped network
    computes exactly what the host computes (e.g. a pre-trained host, see ``host_pretrained``)
    until the SEMs are trained.

    The wrapper exposes ``use_semantics = True``, ``sem_channels`` and ``c2f`` like
    :class:`~deepspg_basicsr.archs.DeepSPG`, so :class:`~deepspg_basicsr.models.DeepSPGModel`
    and its subclasses feed it the prior's features.

    Args:
        host (dict): Options of the host arch, ``type`` plus its arguments, built with BasicSR's
            ``build_network`` (copied, never modified). It must map (B, num_in_ch, H, W) to an
            image of the same size (scale 1).
        insert_after (list[str]): Submodule names after which a SEM is inserted.
        sem_channels (list[int]): Channels of each semantic feature branch the wrapper receives
            (e.g. [48, 96, 192] for HRNet-W48 branches 0-2, [18, 36, 72] for HRNet-W18-small).
        sem_branches (list[int] | None): For each insertion, the index into ``sem_channels`` of
            the branch it uses. Default: by order (insertion i uses branch i).
        channels (list[int] | None): SEM widths (the submodules' output channels); skips the
            dry run. Default: None (found by the dry run).
        num_heads (int | list[int]): SEM attention heads, one value or one per insertion; each
            must divide its width. Default: 1.
        ffn_expansion (float): SEM FFN expansion. Default: 2.
        zero_init (bool): SEMs start as identities. Default: True.
        c2f (bool): Coarse-to-fine pass when ``forward`` gets a prior callable. Default: False.
        pad_multiple (int): Reflect-pad the input to a multiple of this (and crop the output
            back), for hosts that need it (RRDBNet with scale 1 needs 4). Default: 1.
        dummy_size (int): Side of the square dummy input of the dry run. Default: 64.
        num_in_ch (int): Input channels of the host (for the dry run). Default: 3.
        host_pretrained (str | None): A checkpoint of the host alone (BasicSR ``params`` /
            ``params_ema`` or a bare state dict), loaded strictly and safely. Default: None.
        host_param_key (str): Key tried first in ``host_pretrained``. Default: 'params'.
    """

    use_semantics = True

    def __init__(
        self,
        host,
        insert_after,
        sem_channels,
        sem_branches=None,
        channels=None,
        num_heads=1,
        ffn_expansion=2.0,
        zero_init=True,
        c2f=False,
        pad_multiple=1,
        dummy_size=64,
        num_in_ch=3,
        host_pretrained=None,
        host_param_key='params',
    ):
        super().__init__()
        if not isinstance(host, dict) or 'type' not in host:
            raise ValueError(f'host must be the options of a registered arch with a "type", got {host!r}')
        if isinstance(insert_after, str):
            insert_after = [insert_after]
        self.insert_after = [str(n) for n in insert_after]
        if not self.insert_after:
            raise ValueError('insert_after needs at least one submodule name')
        if len(set(self.insert_after)) != len(self.insert_after):
            raise ValueError(f'insert_after names a submodule twice: {self.insert_after}')
        self.sem_channels = [int(c) for c in sem_channels]
        n = len(self.insert_after)
        if sem_branches is None:
            if n > len(self.sem_channels):
                raise ValueError(
                    f'{n} insertion points but only {len(self.sem_channels)} semantic branches '
                    f'(sem_channels {self.sem_channels}): set sem_branches to choose a branch for each'
                )
            sem_branches = list(range(n))
        self.sem_branches = [int(b) for b in sem_branches]
        if len(self.sem_branches) != n:
            raise ValueError(f'sem_branches needs one entry per insertion point ({n}), got {self.sem_branches}')
        bad = [b for b in self.sem_branches if not 0 <= b < len(self.sem_channels)]
        if bad:
            raise ValueError(f'sem_branches {bad} out of range for sem_channels {self.sem_channels}')
        heads = list(num_heads) if isinstance(num_heads, (list, tuple)) else [num_heads] * n
        if len(heads) != n:
            raise ValueError(f'num_heads needs one value or one per insertion point ({n}), got {heads}')
        self.c2f = c2f
        self.pad_multiple = int(pad_multiple)

        self.host = build_network(host)
        if host_pretrained is not None:
            state = extract_state_dict(
                load_checkpoint_file(host_pretrained),
                host_pretrained,
                keys=(host_param_key, 'params_ema', 'params'),
            )
            load_state_dict_strict(self.host, state, host_pretrained)
        modules = dict(self.host.named_modules())
        unknown = [name for name in self.insert_after if name not in modules or not name]
        if unknown:
            raise ValueError(
                f'insert_after: no submodule named {unknown} in {type(self.host).__name__}. '
                f'Valid names include: {_readable_names(self.host)} (any key of host.named_modules())'
            )
        if channels is None:
            channels = self._dry_run(modules, num_in_ch, dummy_size)
        self.channels = [int(c) for c in channels]
        if len(self.channels) != n:
            raise ValueError(f'channels needs one entry per insertion point ({n}), got {self.channels}')
        self.sems = nn.ModuleList(
            [
                SemanticEmbeddingModule(c, self.sem_channels[b], h, ffn_expansion, zero_init=zero_init)
                for c, b, h in zip(self.channels, self.sem_branches, heads)
            ]
        )
        for name in self.insert_after:
            modules[name].register_forward_hook(_sem_hook)

    def _dry_run(self, modules, num_in_ch, dummy_size):
        """Output channels of each insertion point, from one host forward on a dummy input."""
        seen = {name: [] for name in self.insert_after}

        def record(name):
            def hook(module, args, output):
                seen[name].append(output)

            return hook

        handles = [modules[name].register_forward_hook(record(name)) for name in self.insert_after]
        was_training = self.host.training
        size = dummy_size + (-dummy_size) % max(1, self.pad_multiple)
        try:
            self.host.eval()
            with torch.no_grad():
                self.host(torch.rand(1, num_in_ch, size, size))
        finally:
            self.host.train(was_training)
            for handle in handles:
                handle.remove()
        channels = []
        for name in self.insert_after:
            outputs = seen[name]
            if not outputs:
                raise ValueError(f'insert_after: submodule {name!r} is not called by the host forward')
            if len(outputs) > 1:
                raise ValueError(
                    f'insert_after: submodule {name!r} is called {len(outputs)} times per forward (a shared '
                    'module); choose a submodule that runs once'
                )
            out = outputs[0]
            if not torch.is_tensor(out) or out.dim() != 4:
                what = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
                raise ValueError(f'insert_after: submodule {name!r} must return a (B, C, H, W) tensor, got {what}')
            channels.append(out.shape[1])
        return channels

    def run_host(self, x, sem_feats):
        """One host pass with ``sem_feats`` visible to the SEM hooks; pads / crops as configured."""
        if sem_feats is None:
            raise ValueError('SemanticGuidedWrapper needs sem_feats (the prior features)')
        sem_feats = list(sem_feats)
        if len(sem_feats) != len(self.sem_channels):
            raise ValueError(f'expected {len(self.sem_channels)} semantic branches, got {len(sem_feats)}')
        h, w = x.shape[-2:]
        if self.pad_multiple > 1:
            x, _ = pad_to_multiple(x, self.pad_multiple)
        # The context lives on the hooked submodules of *this* instance (looked up per call), so
        # deep copies and DataParallel replicas use their own SEMs.
        targets = [self.host.get_submodule(name) for name in self.insert_after]
        try:
            for target, sem, branch in zip(targets, self.sems, self.sem_branches):
                target.__dict__[_CTX] = (sem, sem_feats[branch])
            out = self.host(x)
        finally:
            for target in targets:
                target.__dict__.pop(_CTX, None)
        return crop_to(out, h, w)

    def forward(self, x, sem_feats=None, prior=None, return_aux=False):
        """Run the host with semantic guidance.

        Args:
            x (Tensor): Input image, (B, num_in_ch, H, W).
            sem_feats (list[Tensor]): Semantic branches, branch j of shape
                (B, sem_channels[j], h_j, w_j), any sizes.
            prior (callable | None): Image (B, 3, H, W) -> semantic branches; with ``c2f`` the
                prior is run again on the (clamped) first result and the host runs again.
            return_aux (bool): Return a dict ``out``, ``coarse`` (or None), ``sem_feats``.

        Returns:
            Tensor | dict: The host output, (B, C_out, H, W), or the dict.
        """
        out = self.run_host(x, sem_feats)
        coarse = None
        if self.c2f and prior is not None:
            coarse = out
            sem_feats = prior(coarse.clamp(0, 1))
            out = self.run_host(x, sem_feats)
        if not return_aux:
            return out
        return {'out': out, 'coarse': coarse, 'sem_feats': sem_feats}
