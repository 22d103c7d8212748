"""The weights cache: where downloaded files live, checksums, and atomic, verified downloads.

Cache folder, first match wins:

1. ``$DEEPSPG_WEIGHTS_DIR`` (this project's variable; the files sit directly in it);
2. ``$TORCH_HOME/hub/checkpoints``;
3. ``$XDG_CACHE_HOME/torch/hub/checkpoints``;
4. ``~/.cache/torch/hub/checkpoints``.

Items 2-4 are torch.hub's own checkpoint folder, so a file that torch.hub, mmengine or timm already
downloaded under its published name is found and not fetched again.

A download is written to a temporary file in the cache folder, hashed while it is written, and moved
to its final name with :func:`os.replace` only when its sha256 matches: an interrupted download or a
wrong file leaves nothing under the final name (and the temporary file is removed).
"""

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request

from ..utils.checkpoint import CheckpointError

logger = logging.getLogger('basicsr')

__all__ = ['WeightsError', 'cache_dir', 'file_sha256', 'sha256_matches', 'verify_file', 'download_file']

#: Environment variable naming the project's weights cache folder (first in the search order).
CACHE_ENV = 'DEEPSPG_WEIGHTS_DIR'
#: Bytes read or written at a time.
CHUNK = 1 << 20


class WeightsError(CheckpointError):
    """A weights file cannot be resolved: unknown name, missing file, failed download, or wrong checksum."""


def cache_dir():
    """The folder downloaded weights are kept in (see the module docstring for the order).

    Returns:
        str: An absolute path (not created here).
    """
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV]))
    if os.environ.get('TORCH_HOME'):
        torch_home = os.environ['TORCH_HOME']
    else:
        xdg = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
        torch_home = os.path.join(xdg, 'torch')
    return os.path.abspath(os.path.join(os.path.expanduser(torch_home), 'hub', 'checkpoints'))


def file_sha256(path):
    """Hex sha256 of a file (None for None)."""
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def sha256_matches(actual, expected):
    """Whether the hex digest ``actual`` matches ``expected``: the full sha256, or a published prefix
    of it (at least 8 hex digits, e.g. the suffix of MMSegmentation's file names)."""
    expected = expected.lower()
    if len(expected) < 8:
        raise ValueError(f'a sha256 prefix needs at least 8 hex digits, got {expected!r}')
    return actual.lower().startswith(expected)


def verify_file(path, expected):
    """Check a file's sha256 against ``expected`` (full digest or prefix) and return the full digest.

    Raises:
        WeightsError: naming the file and both digests when they differ.
    """
    actual = file_sha256(path)
    if not sha256_matches(actual, expected):
        kind = 'sha256' if len(expected) == 64 else 'sha256 prefix'
        raise WeightsError(
            f'refused {path}: its sha256 is {actual}, the expected {kind} is {expected}. The file is damaged or '
            'is not the published one; delete it (a known name is downloaded again) or point at the right file.'
        )
    return actual


def download_file(url, path, sha256, timeout=60):
    """Download ``url`` to ``path`` atomically, verified against ``sha256``.

    Args:
        url (str): Where to download from (``http://``, ``https://`` or ``file://``).
        path (str): Final file; its folder is created. Nothing is written under this name unless the
            whole download matches ``sha256``.
        sha256 (str): The expected hex sha256, full or a published prefix (:func:`sha256_matches`).
        timeout (float): Seconds of socket inactivity before giving up. Default: 60.

    Returns:
        str: The full sha256 of the downloaded file.

    Raises:
        WeightsError: the download failed (naming the URL and ``path``) or the checksum differs (naming
        both digests); no file is left under ``path`` nor any temporary file beside it.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(path)}.', suffix='.part')
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, 'wb') as out:
            logger.info('Downloading %s to %s', url, path)
            with urllib.request.urlopen(url, timeout=timeout) as response:
                expected_size = response.headers.get('Content-Length')
                for block in iter(lambda: response.read(CHUNK), b''):
                    out.write(block)
                    digest.update(block)
                    size += len(block)
            if expected_size is not None and size != int(expected_size):
                raise WeightsError(
                    f'download of {url} was cut off: {size} of {expected_size} bytes received; nothing was written '
                    f'to {path}'
                )
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if not sha256_matches(actual, sha256):
            raise WeightsError(
                f'refused the download of {url}: its sha256 is {actual}, the expected sha256 is {sha256}; '
                f'nothing was written to {path}'
            )
        os.replace(tmp, path)
    except (OSError, http.client.HTTPException, ValueError) as err:
        _remove(tmp)
        raise WeightsError(f'cannot download {url} to {path}: {type(err).__name__}: {err}') from err
    except BaseException:
        _remove(tmp)
        raise
    logger.info('Downloaded %s (%d bytes, sha256 %s)', path, size, actual)
    return actual


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
