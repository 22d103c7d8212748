"""Image IO: bit depth, grey and alpha survive a read / write round trip; clear errors."""

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr.utils.image_io import ImageIOError, ImageRecord, read_image, write_image

import cv2
import numpy as np
import pytest
import torch


def _random(shape, dtype, seed=0):
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(0, info.max + 1, size=shape, dtype=dtype)


def _round_trip(tmp_path, arr, name):
    src, dst = tmp_path / f'in_{name}', tmp_path / f'out_{name}'
    assert cv2.imwrite(str(src), arr)
    tensor, record = read_image(src)
    write_image(dst, tensor, record)
    return tensor, record, cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)


def test_rgb_8bit(tmp_path):
    bgr = _random((13, 17, 3), np.uint8)
    bgr[0, 0] = (0, 0, 255)  # pure red in BGR
    tensor, record, back = _round_trip(tmp_path, bgr, 'rgb8.png')
    assert tensor.shape == (1, 3, 13, 17) and tensor.dtype == torch.float32
    assert tensor[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]  # RGB order
    assert torch.equal(tensor[0].permute(1, 2, 0).flip(-1) * 255, torch.from_numpy(bgr).float())
    assert record.dtype == 'uint8' and record.channels == 3 and record.alpha is None
    assert back.dtype == np.uint8 and np.array_equal(back, bgr)


@pytest.mark.parametrize('ext', ['.png', '.tif'])
def test_rgb_16bit(tmp_path, ext):
    bgr = _random((11, 9, 3), np.uint16)
    tensor, record, back = _round_trip(tmp_path, bgr, 'rgb16' + ext)
    assert record.dtype == 'uint16'
    assert tensor.min() >= 0 and tensor.max() <= 1
    assert back.dtype == np.uint16 and np.array_equal(back, bgr)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_grey(tmp_path, dtype):
    grey = _random((10, 12), dtype)
    tensor, record, back = _round_trip(tmp_path, grey, 'grey.png')
    assert tensor.shape == (1, 3, 10, 12)
    assert torch.equal(tensor[:, 0], tensor[:, 1]) and torch.equal(tensor[:, 0], tensor[:, 2])
    assert record.channels == 1
    assert back.shape == grey.shape and back.dtype == dtype and np.array_equal(back, grey)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_rgba_alpha_kept(tmp_path, dtype):
    bgra = _random((8, 14, 4), dtype)
    tensor, record, back = _round_trip(tmp_path, bgra, 'rgba.png')
    assert tensor.shape == (1, 3, 8, 14)  # alpha not fed to the network
    assert np.array_equal(record.alpha, bgra[..., 3])
    assert back.shape == bgra.shape and np.array_equal(back[..., 3], bgra[..., 3])
    assert np.array_equal(back, bgra)

    # an "enhanced" result keeps the same alpha
    enhanced = tmp_path / 'enhanced.png'
    write_image(enhanced, (tensor * 1.5).clamp(0, 1), record)
    assert np.array_equal(cv2.imread(str(enhanced), cv2.IMREAD_UNCHANGED)[..., 3], bgra[..., 3])


def test_codec_limits(tmp_path):
    bgra = _random((8, 8, 4), np.uint16)
    tensor, record, _ = _round_trip(tmp_path, bgra, 'rgba16.png')
    with pytest.warns(UserWarning, match='alpha'):
        write_image(tmp_path / 'out.jpg', tensor, record)  # JPEG: 8-bit, no alpha
    back = cv2.imread(str(tmp_path / 'out.jpg'), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and back.shape == (8, 8, 3)

    write_image(tmp_path / 'sub' / 'default.png', tensor)  # no record: 8-bit RGB, folder created
    assert cv2.imread(str(tmp_path / 'sub' / 'default.png'), cv2.IMREAD_UNCHANGED).shape == (8, 8, 3)

    with pytest.raises(ImageIOError, match='alpha'):
        write_image(tmp_path / 'crop.png', tensor[..., :4], record)


def test_unreadable_files_name_the_file(tmp_path):
    missing = tmp_path / 'nope.png'
    with pytest.raises(FileNotFoundError, match='nope.png'):
        read_image(missing)
    garbage = tmp_path / 'garbage.png'
    garbage.write_bytes(b'not an image at all')
    with pytest.raises(ImageIOError, match='garbage.png'):
        read_image(garbage)
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(ImageIOError, match='empty.jpg'):
        read_image(empty)
    with pytest.raises(ImageIOError, match='unknown.xyz'):
        write_image(tmp_path / 'unknown.xyz', torch.zeros(1, 3, 4, 4), ImageRecord())


def test_float32_tiff(tmp_path):
    bgr = np.random.default_rng(0).random((6, 5, 3), dtype=np.float32)
    tensor, record, back = _round_trip(tmp_path, bgr, 'float.tif')
    assert record.dtype == 'float32'
    assert back.dtype == np.float32 and np.array_equal(back, bgr)


def test_jpeg_exif_orientation_applied(tmp_path):
    image_module = pytest.importorskip('PIL.Image')
    img = image_module.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img.save(tmp_path / 'phone.jpg', exif=exif)
    tensor, _ = read_image(tmp_path / 'phone.jpg')
    assert tensor.shape == (1, 3, 20, 10)  # as displayed, not as stored
