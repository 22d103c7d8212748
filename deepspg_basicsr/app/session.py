"""What ``deepspg-app`` does, without the web page: load a model, enhance uploaded photos, make
the pictures the page shows. The enhancement is the one inference core's
(:class:`~deepspg_basicsr.inference.DeepSPGEnhancer`, :func:`~deepspg_basicsr.utils.image_io.write_image`),
as ``deepspg-enhance``'s, so a downloaded result equals the command line's output for the same
input and options.

Everything is written under the session's output folder: one ``run-<time>-<n>/`` folder per
click, holding the results under the uploaded file names and ``view/`` (8-bit PNG previews).
"""

import html
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from ..inference import DeepSPGEnhancer, EnhanceError, colour_overlay
from ..utils.class_names import class_names_for, seg_palette
from ..utils.image_io import ImageRecord, read_image, write_image

__all__ = [
    'AppError',
    'AppSession',
    'PhotoResult',
    'memory_estimate',
    'suggest_tile',
    'format_notes',
    'legend_entries',
    'legend_html',
]

#: Bytes per pixel the demo-size DeepSPG needs on the CPU without tiles (activations; measured,
#: docs/EVALUATION.md section 4), and the buffers every run keeps per pixel (input, output, copies).
UNTILED_BYTES_PER_PIXEL = 1100
BUFFER_BYTES_PER_PIXEL = 50
#: Activations of one 512 x 512 tile (measured, same network); they grow with the tile's area.
TILE_512_BYTES = 360 * 2**20
#: Tile sizes offered when an image is too large to enhance whole, largest first.
TILE_CHOICES = (1024, 768, 512, 384, 256)
#: Longer side of the previews shown on the page (the downloads keep the full size).
PREVIEW_SIDE = 1600
GB = 2**30
NO_SEGMENTATION = (
    '<p>No segmentation: it needs the torch backend with a segmentation prior (an option file and a '
    'checkpoint, not an exported ONNX model).</p>'
)
MISMATCH_HINT = (
    '. The checkpoint was trained with another network_g / prior: choose the option file it was trained with'
)


class AppError(RuntimeError):
    """A problem to show on the page (bad model files, an image that cannot be enhanced)."""


def memory_estimate(height, width, tile=0):
    """Approximate memory (bytes) to enhance a ``height`` x ``width`` image, above what the loaded
    model already holds, for the demo-size network on the CPU (wider networks and HRNet-W48 need
    more).

    Args:
        height (int): Image height.
        width (int): Image width.
        tile (int): Tile size; 0: the whole image at once. Default: 0.
    """
    pixels = height * width
    if tile <= 0 or max(height, width) <= tile:
        return pixels * (UNTILED_BYTES_PER_PIXEL + BUFFER_BYTES_PER_PIXEL)
    return pixels * BUFFER_BYTES_PER_PIXEL + TILE_512_BYTES * (tile / 512) ** 2


def suggest_tile(height, width, limit):
    """The largest of :data:`TILE_CHOICES` whose :func:`memory_estimate` fits ``limit`` bytes, or None."""
    for tile in TILE_CHOICES:
        if memory_estimate(height, width, tile) <= limit:
            return tile
    return None


def image_size(path):
    """(height, width) from the file's header without decoding it (Pillow), or None when Pillow
    does not know the format (OpenCV then decodes the file and reports what is wrong)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with gradio
        return None
    limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            Image.MAX_IMAGE_PIXELS = None  # only the header is read: Pillow's bound is the app's to apply
            with Image.open(path) as img:
                width, height = img.size
        except Exception:  # noqa: BLE001 - unknown or corrupt: left to OpenCV's decoder and its message
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    return height, width


def format_notes(record):
    """What the download keeps of the input's format that the preview does not show.

    Args:
        record (ImageRecord): From :func:`~deepspg_basicsr.utils.image_io.read_image`.

    Returns:
        list[str]: Sentences, empty for an 8-bit colour image without alpha.
    """
    notes = []
    if record.dtype == 'uint16':
        notes.append('16-bit input: the download keeps 16 bits per sample (PNG / TIFF), the preview is 8-bit')
    elif record.dtype == 'float32':
        notes.append('float input: the download keeps float samples where the format stores them')
    if record.channels == 1:
        notes.append('grey input: enhanced as RGB, the download is grey again')
    if record.alpha is not None:
        notes.append('alpha channel: kept aside, not enhanced, re-attached to the download')
    return notes


def legend_entries(classes, names, min_fraction=0.0):
    """The classes present in a segmentation, largest area first.

    Args:
        classes (Tensor): Class indices (1, H, W) or (H, W).
        names (Sequence[str]): One name per class of the prior.
        min_fraction (float): Leave out classes covering less of the image. Default: 0.

    Returns:
        list[tuple[int, str, float, str]]: (class index, name, fraction of the pixels,
        ``#rrggbb`` colour of :func:`~deepspg_basicsr.utils.class_names.seg_palette`).
    """
    counts = torch.bincount(classes.flatten(), minlength=len(names)).double()
    fractions = counts / max(1.0, float(counts.sum()))
    palette = (seg_palette(len(names)) * 255).round().to(torch.uint8).tolist()
    order = torch.argsort(counts, descending=True, stable=True).tolist()
    return [
        (k, names[k], float(fractions[k]), '#{:02x}{:02x}{:02x}'.format(*palette[k]))
        for k in order
        if counts[k] > 0 and fractions[k] >= min_fraction
    ]


def legend_html(entries, dataset=''):
    """An HTML list of colour swatches, class names and areas for :func:`legend_entries`."""
    rows = ''.join(
        f'<li><span style="display:inline-block;width:1em;height:1em;background:{colour};'
        f'border:1px solid #0004;vertical-align:middle"></span> {html.escape(name)} '
        f'<small>({fraction:.1%})</small></li>'
        for _, name, fraction, colour in entries
    )
    title = f'<b>Classes the prior saw{" (" + html.escape(dataset) + ")" if dataset else ""}</b>'
    return f'<div class="deepspg-legend">{title}<ul style="list-style:none;padding-left:0">{rows}</ul></div>'


def _dataset_of(num_classes):
    return {150: 'ADE20K', 21: 'PASCAL VOC', 19: 'Cityscapes', 20: 'Cityscapes'}.get(num_classes, '')


def _preview(tensor, path):
    """Write ``tensor`` (1, 3, H, W) as an 8-bit PNG with its longer side at most :data:`PREVIEW_SIDE`."""
    h, w = tensor.shape[-2:]
    scale = PREVIEW_SIDE / max(h, w)
    if scale < 1:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        tensor = F.interpolate(tensor.float(), size=size, mode='bilinear', align_corners=False, antialias=True)
    write_image(path, tensor.clamp(0, 1), ImageRecord())
    return path


@dataclass
class PhotoResult:
    """One enhanced photo: the download and the previews the page shows (file paths).

    Attributes:
        name (str): The uploaded file name.
        download (str): The result in the input's format, bit depth and channels.
        before (str): Input preview. after (str): Output preview.
        illumination (str | None), reflectance (str | None): Preview of each map.
        segmentation (str | None): The prior's classes as a colour overlay on the output.
        legend (str): HTML legend of the overlay ('' without one).
        seconds (float): Time to enhance (read, enhance, write the result).
        size (tuple[int, int]): (height, width).
        notes (list[str]): What the download keeps that the preview does not show.
    """

    name: str
    download: str
    before: str
    after: str
    illumination: Optional[str] = None
    reflectance: Optional[str] = None
    segmentation: Optional[str] = None
    legend: str = ''
    seconds: float = 0.0
    size: tuple = (0, 0)
    notes: list = field(default_factory=list)


class AppSession:
    """The model the page uses and the folder it writes into.

    Args:
        output (str): Every file the app writes goes under this folder.
        opt (str | None): Default option file. weights (str | None): default checkpoint.
        onnx (str | None): Default exported model (ONNX Runtime backend).
        device (str): ``auto`` | ``cpu`` | ``cuda``. Default: ``auto``.
        threads (int): CPU threads (torch / ONNX Runtime); 0: their default. Default: 0.
        memory_limit (float): Bytes an image may need (:func:`memory_estimate`); a larger one is
            refused with a tile size to use. Default: half the machine's memory (4 GiB if unknown).
        seg_checkpoint (str | None): Segmentation prior checkpoint, overriding the option file's.
        overlap (int | None): Minimum overlap of tiles; None: ``deepspg-enhance``'s default (64).
    """

    def __init__(
        self,
        output,
        opt=None,
        weights=None,
        onnx=None,
        device='auto',
        threads=0,
        memory_limit=None,
        seg_checkpoint=None,
        overlap=None,
    ):
        self.output = os.path.abspath(output)
        self.defaults = {'opt': opt or '', 'weights': weights or '', 'onnx': onnx or ''}
        self.device_name = device
        self.threads = threads
        self.seg_checkpoint = seg_checkpoint
        self.overlap = overlap
        self.memory_limit = memory_limit if memory_limit else default_memory_limit()
        self.enhancer = None
        self._key = None
        self._lock = threading.Lock()
        self._runs = 0

    # ---- model -------------------------------------------------------------------------------
    def load(self, opt='', weights='', onnx=''):
        """Load (or keep, when the files are the same) the model; returns :meth:`describe_model`.

        Args:
            opt (str): Option file (torch backend). weights (str): its checkpoint (else the option
                file's ``path.pretrain_network_g``). onnx (str): an exported model instead of both.

        Raises:
            AppError: naming the files, when they cannot be read or do not fit together.
        """
        opt, weights, onnx = (v.strip() if isinstance(v, str) else '' for v in (opt, weights, onnx))
        key = (opt, weights, onnx)
        with self._lock:
            if key == self._key and self.enhancer is not None:
                return self.describe_model()
            source = f'the ONNX model {onnx}' if onnx else f'option file {opt or "(none)"}, checkpoint '
            default = '(path.pretrain_network_g of the option file)' if opt else '(the shipped model)'
            source += '' if onnx else (weights or default)
            try:
                enhancer = DeepSPGEnhancer(
                    opt or None,
                    weights=weights or None,
                    onnx=onnx or None,
                    device=self.device_name,
                    threads=self.threads,
                    seg_checkpoint=self.seg_checkpoint,
                    overlap=self.overlap,
                )
            except Exception as err:  # noqa: BLE001 - every failure becomes a message on the page
                hint = MISMATCH_HINT if 'does not match' in str(err) else ''
                raise AppError(f'cannot load the model from {source}: {_message(err)}{hint}') from err
            self.enhancer, self._key = enhancer, key
            return self.describe_model()

    def backend(self):
        """The backend in words: ``torch (cpu)`` or ``ONNX Runtime (CPUExecutionProvider)``."""
        if self.enhancer is None:
            return 'no model loaded'
        if self.enhancer.backend == 'onnxruntime':
            return f'ONNX Runtime ({", ".join(self.enhancer.model.session.providers)})'
        return f'torch ({self.enhancer.device.type})'

    def random_weights_warnings(self):
        """Loud warnings for priors (or an enhancer) with random weights; [] when all are trained."""
        if self.enhancer is None:
            return []
        warn, random = [], self.enhancer.random_weights
        onnx = self.enhancer.backend == 'onnxruntime'
        if onnx and random['enhancer']:
            warn.append('THE ENHANCER HAS RANDOM WEIGHTS: exported untrained, its output is meaningless')
        if onnx and random['prior']:
            warn.append('THE SEMANTIC PRIOR HAS RANDOM WEIGHTS: it was exported without its checkpoint')
        if not onnx and random['prior']:
            warn.append(
                'THE SEMANTIC PRIOR HAS RANDOM WEIGHTS (no prior.seg_checkpoint): its segmentation below is '
                'meaningless and results are not comparable to the paper'
            )
        return warn

    def describe_model(self):
        """Markdown: the backend, the files and the random-weights warnings."""
        e = self.enhancer
        if e.backend == 'onnxruntime':
            files = f'`{e.onnx}`'
        elif getattr(e, 'weights_name', None):
            files = f'`{e.weights_name}` (known weights, sha256 verified)'
        elif e.option_file is None:
            files = f'weights `{e.weights}`'
        else:
            files = f'`{e.option_file}`, checkpoint `{e.weights}`'
        lines = [f'**Model loaded** ({self.backend()}): {files}']
        info = getattr(e, 'info', None) or {}
        if e.backend == 'torch' and info.get('trained_on'):
            lines.append(
                f'**{info.get("name", "model")}**: trained on {info["trained_on"]} ({info.get("model_card", "")})'
            )
        lines += [f'> ⚠️ **{w}**' for w in self.random_weights_warnings()]
        return '\n\n'.join(lines)

    # ---- photos ------------------------------------------------------------------------------
    def check_size(self, path, name, tile):
        """Raise :class:`AppError` (with a tile size to use) when the image at ``path`` needs more
        than the memory bound."""
        size = image_size(path)
        if size is None:
            return
        height, width = size
        need = memory_estimate(height, width, tile)
        if need <= self.memory_limit:
            return
        what = f'{name} is {width}x{height} ({height * width / 1e6:.1f} megapixels)'
        how = f'in {tile}x{tile} tiles' if tile and max(size) > tile else 'whole'
        bound = f'the memory bound of {self.memory_limit / GB:.1f} GB (deepspg-app --memory-limit)'
        advice = suggest_tile(height, width, self.memory_limit)
        if advice is None:
            raise AppError(f'{what}: too large for {bound} even in small tiles; downscale it first')
        raise AppError(
            f'{what}: enhancing it {how} needs about {need / GB:.1f} GB, above {bound}. Set "Tile size" to '
            f'{advice} (about {memory_estimate(height, width, advice) / GB:.1f} GB) and enhance again.'
        )

    def new_run_folder(self):
        """A new, empty ``run-<time>-<n>`` folder under the output folder."""
        with self._lock:
            self._runs += 1
            run = os.path.join(self.output, time.strftime('run-%Y%m%d-%H%M%S') + f'-{self._runs}')
        os.makedirs(os.path.join(run, 'view'), exist_ok=True)
        return run

    def enhance_photo(self, path, run, name=None, tile=0, progress=None):
        """Enhance one photo as ``deepspg-enhance`` does and make its previews.

        Args:
            path (str): The uploaded file.
            run (str): The run folder (:meth:`new_run_folder`); the result is ``run/<name>``.
            name (str | None): The file name to show and write under. Default: ``path``'s.
            tile (int): Tile size; 0: the whole image. Default: 0.
            progress (callable | None): ``progress(done, total)`` per tile. Default: None.

        Returns:
            PhotoResult

        Raises:
            AppError: a clear message naming ``name`` (not an image, too large, ...).
        """
        if self.enhancer is None:
            raise AppError('no model loaded')
        name = os.path.basename(name or path)
        tile = self._checked_tile(tile)
        self.check_size(path, name, tile)
        start = time.perf_counter()
        try:
            x, record = read_image(path)
        except (OSError, ValueError) as err:
            raise AppError(f'{name}: not an image this app can read ({_message(err).replace(path, name)})') from err
        try:
            res = self.enhancer.enhance_tensor(x, maps=self.enhancer.has_maps, tile=tile, progress=progress)
        except Exception as err:  # noqa: BLE001 - e.g. out of memory
            raise AppError(f'{name}: {_message(err).replace("--tile", "a Tile size of")}') from err
        stem, ext = os.path.splitext(name)
        download = os.path.join(run, name)
        write_image(download, res['out'], record)
        seconds = time.perf_counter() - start
        view = os.path.join(run, 'view', stem + ext.replace('.', '_'))
        result = PhotoResult(
            name=name,
            download=download,
            before=_preview(x, f'{view}_before.png'),
            after=_preview(res['out'], f'{view}_after.png'),
            seconds=seconds,
            size=tuple(x.shape[-2:]),
            notes=format_notes(record),
        )
        if 'illumination' in res:
            result.illumination = _preview(res['illumination'], f'{view}_illumination.png')
            result.reflectance = _preview(res['reflectance'].clamp(0, 1), f'{view}_reflectance.png')
        prior = self.enhancer.seg_prior
        if prior is None:
            result.legend = NO_SEGMENTATION
        else:
            classes = self.enhancer.segment(x)
            overlay = colour_overlay(classes, res['out'], prior.num_classes)
            result.segmentation = _preview(overlay, f'{view}_segmentation.png')
            names = class_names_for(prior)
            result.legend = legend_html(legend_entries(classes, names, 0.001), _dataset_of(len(names)))
        return result

    def _checked_tile(self, tile):
        tile = int(tile or 0)
        if tile < 0:
            raise AppError(f'Tile size must be 0 (whole image) or positive, got {tile}')
        overlap, align = self.enhancer.overlap, self.enhancer.align
        if tile and tile // align * align - overlap < align:
            raise AppError(
                f'Tile size {tile} is too small: tiles overlap by {overlap} pixels (deepspg-app --overlap), '
                f'so use at least {overlap + align}, e.g. 256 or 512'
            )
        return tile


def _message(err):
    """One line for the page: the error's own message, with its type where that says more."""
    text = str(err).strip() or type(err).__name__
    if isinstance(err, torch.cuda.OutOfMemoryError) or 'out of memory' in text.lower():
        return f'out of memory ({text.splitlines()[0]}); set a Tile size, e.g. 512'
    if isinstance(err, (OSError, ValueError, EnhanceError, RuntimeError)):
        return text
    return f'{type(err).__name__}: {text}'


def default_memory_limit():
    """Half the machine's physical memory in bytes (4 GiB where it cannot be read)."""
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return 4 * GB
