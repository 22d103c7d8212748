"""Known weights by name: the table, the packaged ESPNetv2 files, the verified download cache.

Downloads go to an HTTP server on 127.0.0.1 that each test starts itself (no network): the same code
path as a real first use, through :func:`deepspg_basicsr.weights.resolve_weights`.
"""

import dataclasses
import hashlib
import http.server
import os
import shutil
import threading

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
from deepspg_basicsr import weights as W
from deepspg_basicsr.priors import build_segmentation_prior
from deepspg_basicsr.priors.clip_prior import _load_weights_file, build_open_clip
from deepspg_basicsr.priors.segmentation_prior import SegmentationPrior
from deepspg_basicsr.utils.checkpoint import CheckpointError

import numpy as np
import pytest
import torch
import yaml
from llie_test_utils import train_opt

PASCAL = W.KNOWN_WEIGHTS['espnetv2-pascal']
PASCAL_SHA = 'bc479586b0ba9254e02589020346931a14d99028ad6bac4817198be6d9e719a6'
CITY_SHA = 'a72d59699801c7ce8e8b89a53af9097eaaa60dc12180ecde86fd700ba1222fe8'


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty weights cache of this test (``DEEPSPG_WEIGHTS_DIR``)."""
    folder = tmp_path / 'cache'
    monkeypatch.setenv('DEEPSPG_WEIGHTS_DIR', str(folder))
    monkeypatch.delenv('DEEPSPG_OFFLINE', raising=False)
    return folder


class _Server:
    """Files served on 127.0.0.1: path -> bytes; ``cut`` paths announce their full length but
    send half and close (an interrupted download); ``hits`` counts requests per path."""

    def __init__(self):
        self.files, self.cut, self.hits = {}, set(), {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (http.server's name)
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.cut else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f'http://127.0.0.1:{self.httpd.server_address[1]}{path}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _fake_entry(monkeypatch, server, payload, sha256=None, name='hrnet-w18s-ade20k', path='/w/fake.pth', cut=False):
    """Point the known entry ``name`` at ``payload`` served by ``server`` (its sha256 unless given)."""
    server.files[path] = payload
    if cut:
        server.cut.add(path)
    entry = dataclasses.replace(
        W.KNOWN_WEIGHTS[name],
        url=server.url(path),
        sha256=sha256 or hashlib.sha256(payload).hexdigest(),
        filename=os.path.basename(path),
    )
    monkeypatch.setitem(W.KNOWN_WEIGHTS, name, entry)
    return entry


# ---- the table ----------------------------------------------------------------------------------


def test_table_entries_are_complete_and_name_their_option_fragment():
    assert set(W.KNOWN_WEIGHTS) == {
        'espnetv2-pascal',
        'espnetv2-city',
        'hrnet-w48-ade20k',
        'hrnet-w18s-ade20k',
        'clip-vit-b16-openai',
        'deepspg-espnetv2-photos',
    }
    for name, w in W.KNOWN_WEIGHTS.items():
        assert w.name == name and w.kind in ('segmentation', 'clip', 'enhancer')
        assert w.licence and w.source
        if w.kind == 'enhancer':  # this project's own: packaged, nowhere to download from
            assert w.packaged and w.url == '' and len(w.sha256) == 64
            continue
        assert w.url.startswith('https://') and w.url.endswith(w.filename)
        assert len(w.sha256) in (8, 64) and int(w.sha256, 16) >= 0
        if w.kind == 'segmentation':
            assert set(w.options) == {'prior', 'network_g'}
            assert set(w.options['prior']) == {'seg_config', 'seg_branches'}
    # MMSegmentation's file names end with the published sha256 prefix; OpenAI's URL holds the whole digest
    hr48 = W.KNOWN_WEIGHTS['hrnet-w48-ade20k']
    assert hr48.filename == 'fcn_hr48_512x512_160k_ade20k_20200614_214407-a52fc02c.pth' and hr48.sha256 == 'a52fc02c'
    assert hr48.url == (
        'https://download.openmmlab.com/mmsegmentation/v0.5/hrnet/fcn_hr48_512x512_160k_ade20k/'
        'fcn_hr48_512x512_160k_ade20k_20200614_214407-a52fc02c.pth'
    )
    assert hr48.sem_channels == [48, 96, 192] and hr48.seg_branches == [0, 1, 2]
    clip = W.KNOWN_WEIGHTS['clip-vit-b16-openai']
    assert clip.url.split('/')[-2] == clip.sha256 and clip.full_sha256
    assert PASCAL.sha256 == PASCAL_SHA and W.KNOWN_WEIGHTS['espnetv2-city'].sha256 == CITY_SHA
    fragment = PASCAL.option_fragment()
    fragment['prior']['seg_branches'].append(9)
    assert PASCAL.seg_branches == [1, 2, 3]  # a copy: the table cannot be changed through it


@pytest.mark.parametrize('name', ['espnetv2-pascal', 'hrnet-w18s-ade20k'])
def test_fragment_channels_match_the_built_prior(name):
    w = W.KNOWN_WEIGHTS[name]
    prior = SegmentationPrior(w.seg_config, out_branches=w.seg_branches)  # random weights: only the shapes
    assert prior.out_channels == w.sem_channels


def test_packaged_espnetv2_files_and_their_licence_notice():
    for name, sha in (('espnetv2-pascal', PASCAL_SHA), ('espnetv2-city', CITY_SHA)):
        w = W.KNOWN_WEIGHTS[name]
        path = os.path.join(W.PACKAGE_WEIGHTS_DIR, w.filename)
        assert w.packaged and W.resolve_weights(name) == path
        assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == sha
    notice = open(os.path.join(W.PACKAGE_WEIGHTS_DIR, 'LICENSE.EdgeNets')).read()
    assert 'MIT License' in notice and 'Sachin Mehta' in notice and 'sacmehta/EdgeNets' in notice
    assert '2b232d3f7fb60658755dad1ebca0ffc895cc795e' in notice and PASCAL_SHA in notice and CITY_SHA in notice


# ---- resolving ----------------------------------------------------------------------------------


def test_paths_pass_unchanged_names_resolve_and_anything_else_is_named(tmp_path):
    f = tmp_path / 'mine.pth'
    f.write_bytes(b'x')
    assert W.resolve_weights(str(f)) == str(f)
    assert W.resolve_weights(f) == str(f)  # path-like
    assert W.resolve_weights(None) is None
    assert W.resolve_weights('ESPNetv2-Pascal') == W.resolve_weights('espnetv2-pascal')  # any case
    with pytest.raises(W.WeightsError) as err:
        W.resolve_weights('espnetv2-pascl')
    msg = str(err.value)
    assert "'espnetv2-pascl': not a known weights name (did you mean 'espnetv2-pascal'?)" in msg
    assert all(name in msg for name in W.KNOWN_WEIGHTS)
    with pytest.raises(W.WeightsError, match=r"missing\.pth': file not found"):
        W.resolve_weights(str(tmp_path / 'missing.pth'))
    with pytest.raises(W.WeightsError, match='names clip weights .* set it as prior.clip_pretrained'):
        W.resolve_weights('clip-vit-b16-openai', kind='segmentation')
    with pytest.raises(CheckpointError):  # WeightsError is a CheckpointError: callers catch one kind
        W.resolve_weights('nothing-of-the-kind')


def test_a_wrong_packaged_file_is_refused_with_path_and_both_hashes(tmp_path, monkeypatch):
    bad = tmp_path / PASCAL.filename
    shutil.copy(os.path.join(W.PACKAGE_WEIGHTS_DIR, PASCAL.filename), bad)
    with open(bad, 'r+b') as f:  # one byte changed
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr('deepspg_basicsr.weights.known_weights.PACKAGE_WEIGHTS_DIR', str(tmp_path))
    with pytest.raises(W.WeightsError) as err:
        W.resolve_weights('espnetv2-pascal')
    msg = str(err.value)
    assert str(bad) in msg and PASCAL_SHA in msg
    assert hashlib.sha256(bad.read_bytes()).hexdigest() in msg


def test_cache_folder_order(monkeypatch, tmp_path):
    for var in ('DEEPSPG_WEIGHTS_DIR', 'TORCH_HOME', 'XDG_CACHE_HOME'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert W.cache_dir() == str(tmp_path / 'home/.cache/torch/hub/checkpoints')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert W.cache_dir() == str(tmp_path / 'xdg/torch/hub/checkpoints')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'th'))
    assert W.cache_dir() == str(tmp_path / 'th/hub/checkpoints')
    monkeypatch.setenv('DEEPSPG_WEIGHTS_DIR', str(tmp_path / 'mine'))
    assert W.cache_dir() == str(tmp_path / 'mine')


# ---- downloading --------------------------------------------------------------------------------


def test_first_use_downloads_verified_then_the_cache_is_used(cache, server, monkeypatch, basicsr_log):
    payload = os.urandom(3 * (1 << 20) + 17)  # more than one read block
    entry = _fake_entry(monkeypatch, server, payload)
    path = W.resolve_weights('hrnet-w18s-ade20k')
    assert path == str(cache / 'fake.pth')
    assert open(path, 'rb').read() == payload
    assert os.listdir(cache) == ['fake.pth']  # no temporary file left
    assert W.resolve_weights('hrnet-w18s-ade20k') == path
    assert server.hits == {'/w/fake.pth': 1}  # the second use read the cache
    digest = hashlib.sha256(payload).hexdigest()
    assert any(entry.url in m and path in m for m in basicsr_log)  # Downloading <url> to <path>
    assert any(path in m and digest in m for m in basicsr_log)  # Downloaded <path> (<size>, sha256 <digest>)


def test_a_published_sha256_prefix_is_what_is_verified(cache, server, monkeypatch):
    payload = b'weights' * 1000
    _fake_entry(monkeypatch, server, payload, sha256=hashlib.sha256(payload).hexdigest()[:8])
    resolved = W.locate_weights('hrnet-w18s-ade20k')
    assert resolved.sha256 == hashlib.sha256(payload).hexdigest() and open(resolved.path, 'rb').read() == payload


def test_a_wrong_checksum_is_refused_and_nothing_is_cached(cache, server, monkeypatch):
    _fake_entry(monkeypatch, server, b'not the published file', sha256='0' * 64)
    with pytest.raises(W.WeightsError) as err:
        W.resolve_weights('hrnet-w18s-ade20k')
    msg = str(err.value)
    assert '0' * 64 in msg and hashlib.sha256(b'not the published file').hexdigest() in msg
    assert not cache.exists() or os.listdir(cache) == []


def test_an_interrupted_download_leaves_no_file(cache, server, monkeypatch):
    entry = _fake_entry(monkeypatch, server, os.urandom(1 << 20), cut=True)
    with pytest.raises(W.WeightsError) as err:
        W.resolve_weights('hrnet-w18s-ade20k')
    assert entry.url in str(err.value)
    assert os.listdir(cache) == []


def test_an_interrupted_process_leaves_no_file(cache, server, monkeypatch):
    """Ctrl-C while the data arrives: the temporary file goes, nothing under the final name."""
    _fake_entry(monkeypatch, server, os.urandom(3 << 20))
    real_sha256 = hashlib.sha256

    class Interrupting:
        def __init__(self):
            self.calls = 0
            self.inner = real_sha256()

        def update(self, block):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            self.inner.update(block)

        def hexdigest(self):
            return self.inner.hexdigest()

    monkeypatch.setattr('deepspg_basicsr.weights.download.hashlib.sha256', Interrupting)
    with pytest.raises(KeyboardInterrupt):
        W.resolve_weights('hrnet-w18s-ade20k')
    assert os.listdir(cache) == []


def test_offline_error_names_url_cache_path_and_option(cache, server, monkeypatch):
    entry = _fake_entry(monkeypatch, server, b'x', path='/w/absent.pth')
    del server.files['/w/absent.pth']  # 404
    with pytest.raises(W.WeightsError) as err:
        W.resolve_weights('hrnet-w18s-ade20k')
    msg = str(err.value)
    assert entry.url in msg and str(cache / 'absent.pth') in msg and 'prior.seg_checkpoint' in msg
    assert '--seg-checkpoint' in msg and 'HTTP Error 404' in msg
    assert not cache.exists() or os.listdir(cache) == []
    with pytest.raises(W.WeightsError, match='downloads are off'):
        W.resolve_weights('hrnet-w18s-ade20k', download=False)
    monkeypatch.setenv('DEEPSPG_OFFLINE', '1')
    with pytest.raises(W.WeightsError, match='downloads are off: DEEPSPG_OFFLINE is set'):
        W.resolve_weights('hrnet-w18s-ade20k')
    assert server.hits == {'/w/absent.pth': 1}  # neither asked the server


def test_a_damaged_cached_file_is_refused_not_replaced(cache, server, monkeypatch):
    payload = b'the published bytes'
    _fake_entry(monkeypatch, server, payload)
    cache.mkdir()
    (cache / 'fake.pth').write_bytes(b'something else')
    with pytest.raises(W.WeightsError, match=str(cache / 'fake.pth')):
        W.resolve_weights('hrnet-w18s-ade20k')
    assert (cache / 'fake.pth').read_bytes() == b'something else' and server.hits == {}


# ---- the priors and the options take names ------------------------------------------------------


def test_segmentation_prior_by_name_logs_checkpoint_and_sha256(basicsr_log):
    prior = build_segmentation_prior({'seg_checkpoint': 'espnetv2-pascal'})  # the name brings its config
    assert prior.config == PASCAL.seg_config and not prior.random_init and prior.num_classes == 21
    assert prior.checkpoint == os.path.join(W.PACKAGE_WEIGHTS_DIR, PASCAL.filename)
    assert prior.checkpoint_sha256 == PASCAL_SHA and prior.checkpoint_name == 'espnetv2-pascal'
    assert any(PASCAL.filename in m and PASCAL_SHA in m for m in basicsr_log)
    assert not any('RANDOM WEIGHTS' in m for m in basicsr_log)
    with pytest.raises(ValueError, match="'espnetv2-pascal' needs prior.seg_config 'espnetv2/espnetv2_s2.0_pascal"):
        build_segmentation_prior({'seg_checkpoint': 'espnetv2-pascal', 'seg_config': 'hrnet/x.py'})


def test_model_with_a_name_fills_the_fragment_and_names_wrong_channels():
    from basicsr.models import build_model

    net = dict(train_opt()['network_g'], sem_channels=[128, 256, 512])
    model = build_model(
        train_opt(is_train=False, network_g=net, prior={'seg_config': None, 'seg_checkpoint': 'espnetv2-pascal'})
    )
    assert model.seg_branches == [1, 2, 3] and model.seg_prior.checkpoint_sha256 == PASCAL_SHA
    with pytest.raises(ValueError, match=r'espnetv2-pascal needs network_g.sem_channels \[128, 256, 512\]'):
        build_model(train_opt(is_train=False, prior={'seg_config': None, 'seg_checkpoint': 'espnetv2-pascal'}))


def test_enhance_command_line_takes_a_name(tmp_path, basicsr_log):
    from deepspg_basicsr import enhance as E

    import cv2

    net = dict(train_opt()['network_g'], sem_channels=[128, 256, 512])
    (tmp_path / 'test.yml').write_text(yaml.safe_dump({'model_type': 'DeepSPGModel', 'network_g': net}))
    cv2.imwrite(str(tmp_path / 'in.png'), np.random.default_rng(0).integers(0, 60, (32, 40, 3), dtype=np.uint8))
    argv = [str(tmp_path / 'in.png'), '-opt', str(tmp_path / 'test.yml'), '--random-weights', '--device', 'cpu']
    argv += ['--seg-checkpoint', 'espnetv2-pascal', '--output', str(tmp_path / 'out'), '--no-progress']
    assert E.main(argv) == 0
    assert (tmp_path / 'out/in.png').is_file()
    assert any(PASCAL.filename in m and PASCAL_SHA in m for m in basicsr_log)


def test_clip_by_name_loads_a_verified_torchscript_archive(cache, server, monkeypatch, basicsr_log):
    """The CLIP entry's file is a TorchScript archive (as OpenAI publishes it): loaded by its known,
    verified name, refused as an anonymous file unless the user trusts it."""
    tiny = build_open_clip('DeepSPG-CLIP-tiny', None)
    size = tiny.visual.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    with torch.no_grad():
        traced = torch.jit.trace(tiny, (torch.rand(1, 3, *size), torch.zeros(1, 77, dtype=torch.long)))
    archive = cache.parent / 'tiny.pt'
    traced.save(str(archive))
    entry = _fake_entry(monkeypatch, server, archive.read_bytes(), name='clip-vit-b16-openai', path='/c/tiny.pt')
    monkeypatch.setitem(
        W.KNOWN_WEIGHTS,
        entry.name,
        dataclasses.replace(entry, options={'prior': {'clip_model': 'DeepSPG-CLIP-tiny', 'clip_quick_gelu': False}}),
    )
    loaded = build_open_clip('DeepSPG-CLIP-tiny', 'clip-vit-b16-openai')
    for key, value in tiny.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert any(
        'clip-vit-b16-openai' in m and hashlib.sha256(archive.read_bytes()).hexdigest() in m for m in basicsr_log
    )
    with pytest.raises(CheckpointError, match='TorchScript archive'):
        _load_weights_file(str(archive), allow_unsafe=False)
    with pytest.raises(ValueError, match='holds DeepSPG-CLIP-tiny weights, but prior.clip_model is'):
        build_open_clip('ViT-B-16', 'clip-vit-b16-openai')


def test_docs_table_matches_the_known_weights():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / 'docs' / 'WEIGHTS.md').read_text()
    for w in W.KNOWN_WEIGHTS.values():
        assert f'| `{w.name}` |' in doc and w.filename in doc and w.sha256 in doc, w.name
        assert not w.url or w.url.split('//', 1)[1].split('/', 1)[0] in doc, w.name
        for section, values in w.options.items():
            for key, value in values.items():
                text = str(value).lower() if isinstance(value, bool) else str(value)
                assert f'{key}: {text}' in doc, (w.name, section, key)


def test_no_option_file_doc_or_code_points_beside_the_repository():
    """Weights come from the package or the cache, never from a folder next to the checkout."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    files = [repo / 'README.md', *repo.glob('docs/*.md'), *repo.glob('options/*.yml'), *repo.glob('scripts/*')]
    files += [*repo.glob('deepspg_basicsr/**/*.py'), *repo.glob('tests/*.py')]
    needles = ('../' + 'shared', 'shared/' + 'priors', 'DEEPSPG_' + 'PRIORS_DIR')
    bad = [(str(p.relative_to(repo)), n) for p in files if p.is_file() for n in needles if n in p.read_text()]
    assert bad == []
