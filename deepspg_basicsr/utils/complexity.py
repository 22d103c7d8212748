"""Parameter and FLOP counts with Retinexformer's protocol (fvcore, total / 1024**3)."""

import math

import torch

__all__ = ['EnhancerPass', 'count_deepspg', 'gflops']


class EnhancerPass(torch.nn.Module):
    """One enhancement pass with the prior features as positional inputs (fvcore traces those only)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, *feats):
        return self.net.enhance(x, list(feats) or None)['out']


def _sdpa_flop_handle(inputs, outputs):
    """fvcore handle for ``aten::scaled_dot_product_attention``: q k^T and attn v multiply-adds."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(i) for i in inputs[:3])
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def gflops(module, inputs):
    """(GFLOPs, FLOPs by module name) of ``module`` on ``inputs`` (fvcore; one multiply-add is one FLOP)."""
    from fvcore.nn import FlopCountAnalysis

    flops = FlopCountAnalysis(module.eval(), inputs)
    flops.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flop_handle)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    return flops.total() / 1024**3, flops.by_module()


def count_deepspg(net, size=256):
    """Parameters and GFLOPs (fvcore total / 1024**3) of one DeepSPG pass at 1x3xSxS.

    The frozen priors are excluded: the network gets the prior's branch features at that input
    size (strides 4 / 8 / 16) as extra inputs.

    Args:
        net (DeepSPG): The network.
        size (int): Input side. Default: 256.

    Returns:
        tuple[int, float]: (parameters, GFLOPs).
    """
    x = torch.rand(1, 3, size, size)
    feats = []
    if net.use_semantics:
        feats = [torch.rand(1, c, size // s, size // s) for c, s in zip(net.sem_channels, (4, 8, 16))]
    return sum(p.numel() for p in net.parameters()), gflops(EnhancerPass(net), (x, *feats))[0]
