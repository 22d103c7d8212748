"""Colour constancy loss for zero-reference training (Zero-DCE's L_col)."""

from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction

_REFERENCES = ('grey', 'input')


@LOSS_REGISTRY.register()
class SPGColorConstancyLoss(nn.Module):
    """Colour constancy between the channel means of the output.

    ``reference: grey`` is Zero-DCE's (Guo et al., CVPR 2020) grey-world colour constancy loss:
    with J^p the mean of channel p of the output,
    ``L = (J^R - J^G)^2 + (J^R - J^B)^2 + (J^G - J^B)^2`` per image.

    ``reference: input`` (the project's option) keeps the *input's* colour balance instead of
    forcing grey: with the chromaticities ``c^p = J^p / mean_q(J^q)`` of output and input
    (1, 1, 1 for grey), ``L = sum_p (c^p_out - c^p_in)^2``. Grey-world fails on scenes whose
    average colour is not grey (a ginger cat, a sunset, a histology slide): trained on such
    photos, the grey-world term teaches a colour cast; a low-light input's channel means are noisy
    but not biased, so its balance is the safer reference. This is the project's implementation.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per image, (B,)) | 'mean' | 'sum'. Default: 'mean'.
        reference (str): 'grey' | 'input'. Default: 'grey'.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', reference='grey'):
        super().__init__()
        check_reduction(reduction)
        if reference not in _REFERENCES:
            raise ValueError(f'reference must be one of {list(_REFERENCES)}, got {reference!r}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.reference = reference

    def forward(self, pred, target=None):
        """pred: (B, 3, H, W) RGB; target: the low-light input, same shape (``reference: input``)."""
        means = pred.mean(dim=(2, 3))
        if self.reference == 'grey':
            r, g, b = means.unbind(dim=1)
            loss = (r - g).pow(2) + (r - b).pow(2) + (g - b).pow(2)
        else:
            if target is None:
                raise ValueError("SPGColorConstancyLoss with reference 'input' needs the input (target)")
            ref = target.mean(dim=(2, 3))
            chroma = means / means.mean(dim=1, keepdim=True).clamp(min=1e-6)
            chroma_ref = ref / ref.mean(dim=1, keepdim=True).clamp(min=1e-6)
            loss = (chroma - chroma_ref).pow(2).sum(dim=1)
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
