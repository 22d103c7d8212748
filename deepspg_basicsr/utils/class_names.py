"""Class names and colours of the segmentation priors, for legends and overlays.

:func:`class_names_for` names the classes of a prior: its own ``class_names`` attribute when it
has one of the right length, else the table of the dataset its class count points to (150:
ADE20K, read from MMSegmentation; 21: PASCAL VOC; 19 / 20: Cityscapes train IDs, the 20th being
the ignore / void output), else ``class k``. :func:`seg_palette` gives the fixed colours that
``deepspg-enhance --save-seg`` and ``deepspg-app`` paint the classes with.
"""

import colorsys

import torch

__all__ = ['VOC_CLASSES', 'CITYSCAPES_CLASSES', 'ade20k_classes', 'class_names_for', 'seg_palette']

#: PASCAL VOC 2012 segmentation classes, index 0 the background.
VOC_CLASSES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
    'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
)  # fmt: skip
#: Cityscapes train IDs 0..18; a 20-output model adds index 19, the ignore / void class.
CITYSCAPES_CLASSES = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation',
    'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle',
)  # fmt: skip


def ade20k_classes():
    """The 150 ADE20K (SceneParse150) class names as MMSegmentation lists them, or None when
    MMSegmentation cannot be imported."""
    try:
        from mmseg.utils import get_classes
    except ImportError:
        return None
    return tuple(get_classes('ade20k'))


def _table(num_classes):
    if num_classes == 150:
        return ade20k_classes()
    if num_classes == len(VOC_CLASSES):
        return VOC_CLASSES
    if num_classes == len(CITYSCAPES_CLASSES):
        return CITYSCAPES_CLASSES
    if num_classes == len(CITYSCAPES_CLASSES) + 1:
        return CITYSCAPES_CLASSES + ('ignore / void',)
    return None


def class_names_for(prior=None, num_classes=None):
    """The name of each class of a segmentation prior.

    Args:
        prior (object | None): A prior with ``num_classes`` and, optionally, ``class_names`` (a
            sequence of ``num_classes`` strings, used as given). Default: None.
        num_classes (int | None): The class count when there is no prior (or to override it).

    Returns:
        tuple[str, ...]: ``num_classes`` names (``class k`` where no table fits).
    """
    if num_classes is None:
        if prior is None:
            raise ValueError('class_names_for needs a prior or num_classes')
        num_classes = int(prior.num_classes)
    own = getattr(prior, 'class_names', None)
    if own is not None and len(own) == num_classes:
        return tuple(str(name) for name in own)
    table = _table(num_classes)
    return tuple(table) if table is not None else tuple(f'class {k}' for k in range(num_classes))


def seg_palette(num_classes=150):
    """A fixed palette of ``num_classes`` distinct colours (golden-angle hues, 3 lightness levels).

    Returns:
        Tensor: (num_classes, 3) float32 RGB in [0, 1]; the same on every run.
    """
    colours = []
    for i in range(num_classes):
        hue = (i * 0.618033988749895) % 1.0
        sat = (0.95, 0.65, 0.8)[i % 3]
        val = (0.95, 0.75, 0.55)[(i // 3) % 3]
        colours.append(colorsys.hsv_to_rgb(hue, sat, val))
    return torch.tensor(colours, dtype=torch.float32)
