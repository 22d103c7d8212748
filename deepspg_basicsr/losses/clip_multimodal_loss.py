"""Multimodal loss of DeepSPG (eq. 14, L_mul) with a frozen CLIP."""

from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .pixel_loss import check_reduction


@LOSS_REGISTRY.register()
class CLIPMultimodalLoss(nn.Module):
    """``cos(E_img(out), E_txt(negative)) - cos(E_img(out), E_txt(positive))``.

    The model owns the frozen CLIP prior (:class:`deepspg_basicsr.priors.CLIPPrior`), built
    with this loss's ``prompts`` so their text embeddings are computed once and cached; it passes
    the image embeddings of the output and the cached text embeddings here.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per image, (B,)) | 'mean' | 'sum'. Default: 'mean'.
        prompts (list[str]): [negative, positive] prompts. Default:
            ['low-light image', 'high-light image'].
    """

    def __init__(self, loss_weight=1.0, reduction='mean', prompts=('low-light image', 'high-light image')):
        super().__init__()
        check_reduction(reduction)
        if len(prompts) != 2:
            raise ValueError(f'prompts must be [negative, positive], got {list(prompts)}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.prompts = list(prompts)

    def forward(self, image_features, text_features):
        """image_features: L2-normalised (B, D); text_features: L2-normalised (2, D), rows
        [negative, positive]."""
        cos = image_features @ text_features.t().to(image_features.dtype)
        loss = cos[:, 0] - cos[:, 1]
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
