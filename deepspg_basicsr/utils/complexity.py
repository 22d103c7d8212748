"""Parameter and FLOP counts with Retinexformer's protocol (fvcore, total / 1024**3)."""

import torch


class _OnePass(torch.nn.Module):
    """Adapter: fvcore traces positional tensors only."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, *feats):
        return self.net.enhance(x, list(feats) or None)['out']


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
    from fvcore.nn import FlopCountAnalysis

    x = torch.rand(1, 3, size, size)
    feats = []
    if net.use_semantics:
        feats = [torch.rand(1, c, size // s, size // s) for c, s in zip(net.sem_channels, (4, 8, 16))]
    flops = FlopCountAnalysis(_OnePass(net).eval(), (x, *feats))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    return sum(p.numel() for p in net.parameters()), flops.total() / 1024**3
