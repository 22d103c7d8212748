"""Semantic consistency loss for zero-reference training: the output segments like the input."""

from basicsr.utils.registry import LOSS_REGISTRY

from .semantic_kl_loss import SemanticKLLoss


@LOSS_REGISTRY.register()
class SemanticConsistencyLoss(SemanticKLLoss):
    """KL(seg(input) || seg(output)), per pixel, over the classes of the frozen segmentation prior.

    The project's reading of a semantic term without ground truth: enhancement should make a
    scene brighter, not change what is in it, so the prior's class distribution on the output is
    pulled towards its distribution on the low-light input. The model runs the frozen prior on
    the input without gradients and on the output with gradients (through the frozen weights,
    into the output), as for :class:`SemanticKLLoss`, whose computation this is with the input
    in place of the ground truth. A ``temperature`` above 1 softens both distributions, so the
    (often unsure) input segmentation constrains less than its arg-max would.

    Related: zero-reference methods (Zero-DCE, CVPR 2020; SCI, CVPR 2022; CLIP-LIT, Liang et al.
    ICCV 2023) use no segmentation prior; CLIP-LIT's prompts are the text-side counterpart,
    here :class:`CLIPMultimodalLoss`.

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'none' (per-pixel map, (B, H, W)) | 'mean' | 'sum'. Default: 'mean'.
        temperature (float): Softmax temperature applied to both logits. Default: 1.0.
    """

    def forward(self, pred_logits, input_logits):
        """pred_logits: the output's logits (B, K, H, W), with gradients; input_logits: the
        input's (resized to pred's size if they differ), without."""
        return super().forward(pred_logits, input_logits)
