"""Losses, registered in BasicSR's LOSS_REGISTRY by the explicit imports below."""

from .clip_multimodal_loss import CLIPMultimodalLoss
from .edge_loss import SPGEdgeLoss
from .pixel_loss import SPGPixelLoss
from .psnr_loss import SPGPSNRLoss
from .semantic_kl_loss import SemanticKLLoss
from .ssim_loss import SPGSSIMLoss

__all__ = ['CLIPMultimodalLoss', 'SPGEdgeLoss', 'SPGPSNRLoss', 'SPGPixelLoss', 'SPGSSIMLoss', 'SemanticKLLoss']

# issue 5: semantic guidance for any BasicSR network
from .semantic_adversarial_loss import SemanticAdversarialLoss  # noqa: E402
from .semantic_histogram_loss import SemanticHistogramLoss  # noqa: E402

__all__ += ['SemanticAdversarialLoss', 'SemanticHistogramLoss']

# issue 11: zero-reference training
from .color_constancy_loss import SPGColorConstancyLoss  # noqa: E402
from .exposure_loss import SPGExposureLoss  # noqa: E402
from .illumination_smoothness_loss import SPGIllumSmoothnessLoss  # noqa: E402
from .semantic_consistency_loss import SemanticConsistencyLoss  # noqa: E402
from .spatial_consistency_loss import SPGSpatialConsistencyLoss  # noqa: E402

__all__ += [
    'SPGColorConstancyLoss',
    'SPGExposureLoss',
    'SPGIllumSmoothnessLoss',
    'SPGSpatialConsistencyLoss',
    'SemanticConsistencyLoss',
]
