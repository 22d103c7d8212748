"""The known weights of the priors, by name: one table, and the resolver the options go through.

``prior.seg_checkpoint: espnetv2-pascal`` (or ``--seg-checkpoint espnetv2-pascal``) names an entry of
:data:`KNOWN_WEIGHTS`; :func:`resolve_weights` turns it into a local, checksum-verified file:

* the two ESPNetv2 checkpoints (MIT, 3.4 MB each) ship inside the package
  (``deepspg_basicsr/weights/files/``, licence notice beside them) and are verified on every load;
* the others are downloaded on first use into the cache of :func:`~.download.cache_dir`,
  atomically and checksum-verified (:func:`~.download.download_file`).

An existing file path is returned unchanged, so every option that takes a name still takes a path.
The table is documented in ``docs/WEIGHTS.md``.
"""

import copy
import difflib
import logging
import os
from collections import namedtuple
from dataclasses import dataclass, field

from .download import WeightsError, cache_dir, download_file, file_sha256, verify_file

logger = logging.getLogger('basicsr')

__all__ = [
    'DEFAULT_ENHANCER',
    'KnownWeights',
    'KNOWN_WEIGHTS',
    'PACKAGE_WEIGHTS_DIR',
    'ResolvedWeights',
    'known_weights_entry',
    'locate_weights',
    'resolve_weights',
    'complete_prior_options',
    'downloads_allowed',
]

#: Folder of the weights shipped as package data (with their licence notice).
PACKAGE_WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'files')

EDGENETS = 'https://github.com/sacmehta/EdgeNets'
EDGENETS_COMMIT = '2b232d3f7fb60658755dad1ebca0ffc895cc795e'
EDGENETS_FOLDER = 'model/segmentation/model_zoo/espnetv2'
MMSEG_HRNET = 'https://download.openmmlab.com/mmsegmentation/v0.5/hrnet'
MMSEG_METAFILE = 'https://github.com/open-mmlab/mmsegmentation/blob/v1.2.2/configs/hrnet/metafile.yaml'


@dataclass(frozen=True)
class KnownWeights:
    """One entry of :data:`KNOWN_WEIGHTS`.

    Attributes:
        name (str): The name options and flags accept, e.g. ``espnetv2-pascal``.
        label (str): Display name in tables and benchmark rows, e.g. ``ESPNetv2-PASCAL``.
        kind (str): ``segmentation`` (for ``prior.seg_checkpoint``), ``clip`` (``prior.clip_pretrained``) or
            ``enhancer`` (a trained DeepSPG, self-describing: ``DeepSPGEnhancer(weights=name)``).
        filename (str): The file name as published (also its name in the cache).
        sha256 (str): Hex sha256 of the file; for MMSegmentation's checkpoints only the published
            8-digit prefix (their file-name suffix), which is what is verified.
        url (str): Where the file is downloaded from.
        source (str): The published source (repository, model zoo or model card).
        licence (str): Licence of the weights as published.
        options (dict): The option fragment the weights need, by section (``prior``: ``seg_config``,
            ``seg_branches``, ``clip_model``...; ``network_g``: ``sem_channels``).
        packaged (bool): Shipped inside the package (:data:`PACKAGE_WEIGHTS_DIR`).
        description (str): Network, data set and published score.
    """

    name: str
    label: str
    kind: str
    filename: str
    sha256: str
    url: str
    source: str
    licence: str
    options: dict = field(default_factory=dict)
    packaged: bool = False
    description: str = ''

    @property
    def option_key(self):
        """The option that takes this kind of weights."""
        keys = {'segmentation': 'prior.seg_checkpoint', 'clip': 'prior.clip_pretrained'}
        return keys.get(self.kind, 'weights (DeepSPGEnhancer) / --weights (deepspg-enhance)')

    @property
    def full_sha256(self):
        """Whether :attr:`sha256` is the whole digest (else a published prefix)."""
        return len(self.sha256) == 64

    @property
    def checked(self):
        """What is verified of the file: ``checksum`` (the whole sha256) or the published prefix."""
        return 'checksum' if self.full_sha256 else f'published sha256 prefix {self.sha256}'

    def option_fragment(self):
        """A fresh copy of :attr:`options` (sections -> keys), safe to merge into options."""
        return copy.deepcopy(self.options)

    @property
    def seg_config(self):
        return self.options.get('prior', {}).get('seg_config')

    @property
    def seg_branches(self):
        return list(self.options.get('prior', {}).get('seg_branches', [0, 1, 2]))

    @property
    def sem_channels(self):
        return list(self.options.get('network_g', {}).get('sem_channels', []))


def _espnetv2(name, label, filename, sha256, config, description):
    return KnownWeights(
        name=name,
        label=label,
        kind='segmentation',
        filename=filename,
        sha256=sha256,
        url=f'https://raw.githubusercontent.com/sacmehta/EdgeNets/{EDGENETS_COMMIT}/{EDGENETS_FOLDER}/{filename}',
        source=f'{EDGENETS}/tree/{EDGENETS_COMMIT}/{EDGENETS_FOLDER}',
        licence='MIT (Copyright (c) 2021 Sachin Mehta; notice in deepspg_basicsr/weights/files/LICENSE.EdgeNets)',
        options={
            'prior': {'seg_config': f'espnetv2/{config}', 'seg_branches': [1, 2, 3]},
            'network_g': {'sem_channels': [128, 256, 512]},
        },
        packaged=True,
        description=description,
    )


def _hrnet(name, label, stem, config, sha_prefix, branches, description):
    return KnownWeights(
        name=name,
        label=label,
        kind='segmentation',
        filename=f'{stem}-{sha_prefix}.pth',
        sha256=sha_prefix,
        url=f'{MMSEG_HRNET}/{stem.rsplit("_", 2)[0]}/{stem}-{sha_prefix}.pth',
        source=MMSEG_METAFILE,
        licence='Apache-2.0 (MMSegmentation model zoo); trained on ADE20K, whose terms of use apply',
        options={
            'prior': {'seg_config': f'hrnet/{config}', 'seg_branches': [0, 1, 2]},
            'network_g': {'sem_channels': branches},
        },
        description=description,
    )


#: Known weights by name. Names are matched without regard to case.
KNOWN_WEIGHTS = {
    w.name: w
    for w in (
        _espnetv2(
            'espnetv2-pascal',
            'ESPNetv2-PASCAL',
            'espnetv2_s_2.0_pascal_384x384.pth',
            'bc479586b0ba9254e02589020346931a14d99028ad6bac4817198be6d9e719a6',
            'espnetv2_s2.0_pascal-384x384.py',
            'ESPNetv2 (s = 2.0), PASCAL VOC 2012, 21 classes, 384x384, 0.79 M parameters, 67.0 mIoU (val)',
        ),
        _espnetv2(
            'espnetv2-city',
            'ESPNetv2-Cityscapes',
            'espnetv2_s_2.0_city_1024x512.pth',
            'a72d59699801c7ce8e8b89a53af9097eaaa60dc12180ecde86fd700ba1222fe8',
            'espnetv2_s2.0_city-1024x512.py',
            'ESPNetv2 (s = 2.0), Cityscapes, 19 classes + ignore, 1024x512, 0.79 M parameters, 66.4 mIoU (val)',
        ),
        _hrnet(
            'hrnet-w48-ade20k',
            'HRNet-W48',
            'fcn_hr48_512x512_160k_ade20k_20200614_214407',
            'fcn_hr48_4xb4-160k_ade20k-512x512.py',
            'a52fc02c',
            [48, 96, 192],
            'HRNetV2-W48 + FCN head (MMSegmentation), ADE20K, 150 classes, 512x512, 66.0 M parameters, 42.02 mIoU',
        ),
        _hrnet(
            'hrnet-w18s-ade20k',
            'HRNet-W18-small',
            'fcn_hr18s_512x512_160k_ade20k_20210829_174739',
            'fcn_hr18s_4xb4-160k_ade20k-512x512.py',
            'f1e7c2e7',
            [18, 36, 72],
            'HRNetV2-W18-Small + FCN head (MMSegmentation), ADE20K, 150 classes, 512x512, 33.07 mIoU',
        ),
        KnownWeights(
            name='clip-vit-b16-openai',
            label='CLIP ViT-B/16',
            kind='clip',
            filename='ViT-B-16.pt',
            sha256='5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f',
            url='https://openaipublic.azureedge.net/clip/models/'
            '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt',
            source='https://github.com/openai/CLIP (model card: model-card.md); open_clip tag `openai`',
            licence='MIT (openai/CLIP); see its model card for the intended uses',
            options={'prior': {'clip_model': 'ViT-B-16', 'clip_quick_gelu': True}},
            description='CLIP ViT-B/16 as published by OpenAI (a TorchScript archive, fp16), 149.6 M parameters',
        ),
        KnownWeights(
            name='deepspg-espnetv2-photos',
            label='DeepSPG photos (ESPNetv2)',
            kind='enhancer',
            filename='deepspg_espnetv2_photos.pth',
            sha256='adb96769f155e3fcc4212e793d48a2f9c1b98963ab974e09f79c73021ec36cf7',
            url='',
            source='this project: trained with options/train_DeepSPG_ESPNetv2_photos.yml (docs/MODEL.md)',
            licence='Apache-2.0 (this project); the ESPNetv2 prior it runs with: MIT (LICENSE.EdgeNets)',
            packaged=True,
            description='DeepSPG base (0.59 M parameters) with the ESPNetv2 PASCAL prior on its input, trained on '
            'real photographs darkened by a camera model; not trained on LOL (docs/MODEL.md)',
        ),
    )
}

#: The enhancer the tools run when given neither an option file nor weights (shipped with the package).
DEFAULT_ENHANCER = 'deepspg-espnetv2-photos'

#: What :func:`locate_weights` returns: the local file, its full sha256, and the entry (None for a path).
ResolvedWeights = namedtuple('ResolvedWeights', ['path', 'sha256', 'entry'])


def known_weights_entry(name):
    """The :class:`KnownWeights` of ``name`` (any case), or None when it is not a known name."""
    if not isinstance(name, str):
        return None
    return KNOWN_WEIGHTS.get(name.strip().lower())


def _not_found(name_or_path, kind):
    names = [n for n, w in KNOWN_WEIGHTS.items() if kind is None or w.kind == kind]
    close = difflib.get_close_matches(str(name_or_path).lower(), names, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ''
    looks_like_path = os.sep in str(name_or_path) or os.path.splitext(str(name_or_path))[1] != ''
    what = 'file not found' if looks_like_path else 'not a known weights name'
    return WeightsError(
        f'{name_or_path!r}: {what}{hint}. Give an existing file or one of the known names: '
        f'{", ".join(names)} (docs/WEIGHTS.md).'
    )


#: Environment variable that turns downloads off (a missing known file is then an error at once).
OFFLINE_ENV = 'DEEPSPG_OFFLINE'


def downloads_allowed():
    """False when ``$DEEPSPG_OFFLINE`` is set to anything but ``0`` / ``false`` / empty."""
    return os.environ.get(OFFLINE_ENV, '').strip().lower() in ('', '0', 'false', 'no')


def locate_weights(name_or_path, kind=None, download=None):
    """Resolve a weights option to a local file and its sha256.

    Args:
        name_or_path (str | os.PathLike): An existing file (returned unchanged, its sha256 computed)
            or a name of :data:`KNOWN_WEIGHTS` (any case).
        kind (str | None): ``segmentation`` or ``clip``: refuse a known name of the other kind.
        download (bool | None): Download a known file missing from the cache. False: raise instead.
            None: unless ``$DEEPSPG_OFFLINE`` is set (:func:`downloads_allowed`).

    Returns:
        ResolvedWeights: ``path``, ``sha256`` (full hex digest) and ``entry`` (None for a path).

    Raises:
        WeightsError: neither a file nor a known name (listing the known names, with the nearest
        one); a known name of another kind; a file whose sha256 differs from the table's (naming
        the file and both digests); a download that failed (naming the URL, the cache path and the
        option that takes a local file).
    """
    path = os.fspath(name_or_path)
    if os.path.isfile(path):
        return ResolvedWeights(path, file_sha256(path), None)
    entry = known_weights_entry(path)
    if entry is None:
        raise _not_found(path, kind)
    if kind is not None and entry.kind != kind:
        raise WeightsError(
            f'{path!r} names {entry.kind} weights ({entry.label}), not {kind} weights: set it as {entry.option_key}'
        )
    packaged = os.path.join(PACKAGE_WEIGHTS_DIR, entry.filename)
    if entry.packaged and os.path.isfile(packaged):
        digest = verify_file(packaged, entry.sha256)
        logger.debug(
            'Weights %s (%s): %s, sha256 %s (%s verified)', entry.name, entry.label, packaged, digest, entry.checked
        )
        return ResolvedWeights(packaged, digest, entry)
    if entry.packaged and not entry.url:
        raise WeightsError(f'{entry.name!r}: the packaged file {packaged} is missing: reinstall deepspg-basicsr')
    cached = os.path.join(cache_dir(), entry.filename)
    if os.path.isfile(cached):
        digest = verify_file(cached, entry.sha256)
    elif not (downloads_allowed() if download is None else download):
        reason = f'downloads are off: {OFFLINE_ENV} is set' if download is None else 'downloads are off here'
        raise _offline(entry, cached, reason)
    else:
        try:
            digest = download_file(entry.url, cached, entry.sha256)
        except WeightsError as err:
            raise _offline(entry, cached, err.__cause__ or err) from err
    logger.debug('Weights %s (%s): %s, sha256 %s (%s verified)', entry.name, entry.label, cached, digest, entry.checked)
    return ResolvedWeights(cached, digest, entry)


def _offline(entry, cached, reason):
    flag = '--seg-checkpoint' if entry.kind == 'segmentation' else None
    option = entry.option_key + (f' (or {flag})' if flag else '')
    return WeightsError(
        f'cannot get the weights {entry.name!r} ({entry.label}): not in the cache ({cached}) and the download from '
        f'{entry.url} failed ({reason}). Download that file on a machine with network access (published at '
        f'{entry.source}), then put it at {cached} (the cache: DEEPSPG_WEIGHTS_DIR, else TORCH_HOME / XDG_CACHE_HOME, '
        f'docs/WEIGHTS.md) or set {option} to its path.'
    )


def resolve_weights(name_or_path, kind=None, download=None):
    """The local file of a weights option: an existing path unchanged, a known name resolved.

    Args:
        name_or_path (str | os.PathLike | None): A file, or a name of :data:`KNOWN_WEIGHTS`. None
            returns None (random weights: the caller warns).
        kind (str | None): ``segmentation`` or ``clip``: refuse a known name of the other kind.
        download (bool | None): Download a known file missing from the cache; None: unless
            ``$DEEPSPG_OFFLINE`` is set (see :func:`locate_weights`).

    Returns:
        str | None: A local file whose sha256 was verified when ``name_or_path`` is a known name.

    Raises:
        WeightsError: see :func:`locate_weights`.
    """
    if name_or_path is None:
        return None
    return locate_weights(name_or_path, kind=kind, download=download).path


def complete_prior_options(prior_opt):
    """``prior`` options completed from a known ``seg_checkpoint`` name (a new dict; the input is not
    mutated): a missing ``seg_config`` / ``seg_branches`` is taken from the table.

    Raises:
        ValueError: ``seg_config`` set to another config than the named weights need (naming both).
    """
    opt = dict(prior_opt or {})
    entry = known_weights_entry(opt.get('seg_checkpoint'))
    if entry is None or entry.kind != 'segmentation' or os.path.isfile(str(opt['seg_checkpoint'])):
        return opt
    config = opt.get('seg_config')
    if config is not None and os.path.normpath(config) != os.path.normpath(entry.seg_config):
        if not (os.path.isfile(config) and config.replace(os.sep, '/').endswith(entry.seg_config)):
            raise ValueError(
                f'prior.seg_checkpoint {entry.name!r} needs prior.seg_config {entry.seg_config!r}, got {config!r} '
                f'(remove prior.seg_config, or set it to {entry.seg_config!r})'
            )
    if config is None:
        opt['seg_config'] = entry.seg_config
    if opt.get('seg_branches') is None:
        opt['seg_branches'] = entry.seg_branches
    return opt
