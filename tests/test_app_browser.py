"""deepspg-app end to end in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, which ``.ci/run`` installs) driven by Selenium uploads a demo photo and a
corrupt file through the page; the downloaded result must equal deepspg-enhance's output."""

import deepspg_basicsr  # noqa: F401  (shims + registration before basicsr)

# isort: split
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from deepspg_basicsr import enhance as E

import cv2
import numpy as np
import pytest
from llie_test_utils import write_demo_photo, write_test_option_file

CHROMIUM = next((p for p in (shutil.which('chromium'), '/usr/bin/chromium') if p and os.path.isfile(p)), None)
CHROMEDRIVER = next(
    (p for p in (shutil.which('chromedriver'), '/usr/bin/chromedriver') if p and os.path.isfile(p)), None
)
#: Set by ``.ci/run``: there, a missing Chromium fails the browser test instead of skipping it.
REQUIRE_BROWSER = 'DEEPSPG_REQUIRE_BROWSER'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT, RUN_TIMEOUT = 180, 240
CHROMIUM_FLAGS = (
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--window-size=1280,1800',
)  # fmt: skip


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _get(url):
    """GET ``url`` without any proxy (the server is on loopback); returns the body."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        return response.read()


@pytest.fixture(autouse=True)
def chromium_present():
    """Skip without Chromium and its driver, or fail when ``DEEPSPG_REQUIRE_BROWSER=1`` (CI).

    Fails if the CI's variable is ignored (the browser test would skip in CI without anyone noticing)."""
    if CHROMIUM is not None and CHROMEDRIVER is not None:
        return
    why = 'no Chromium: install Debian\'s "chromium" and "chromium-driver" packages (.ci/run does)'
    if os.environ.get(REQUIRE_BROWSER) == '1':
        pytest.fail(f'{why}; {REQUIRE_BROWSER}=1 says the browser test must run')
    pytest.skip(why)


@pytest.fixture
def server(tmp_path):
    """``python -m deepspg_basicsr.app`` on a free port with the small test model; yields its URL
    and folders, and stops it afterwards."""
    write_test_option_file(tmp_path)
    cwd, out = tmp_path / 'cwd', tmp_path / 'app_out'
    cwd.mkdir()
    port = _free_port()
    env = dict(
        os.environ,
        GRADIO_ANALYTICS_ENABLED='False',
        PYTHONPATH=os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')]),
    )
    argv = ['-opt', str(tmp_path / 'test.yml'), '--weights', str(tmp_path / 'net_g.pth'), '--device', 'cpu']
    log = open(tmp_path / 'server.log', 'w')  # noqa: SIM115 - closed after the server
    proc = subprocess.Popen(
        [sys.executable, '-m', 'deepspg_basicsr.app', *argv, '--output', str(out), '--port', str(port)],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f'deepspg-app exited with {proc.returncode}:\n{(tmp_path / "server.log").read_text()}')
            try:
                _get(url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f'deepspg-app did not answer in {START_TIMEOUT} s:\n{(tmp_path / "server.log").read_text()}'
                    )
                time.sleep(1)
        yield {'url': url, 'root': tmp_path, 'cwd': cwd, 'out': out}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver  # a test extra: required, not skipped
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + (f'--user-data-dir={tmp_path / "chromium-profile"}',):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_enhances_a_demo_photo_like_deepspg_enhance_and_reports_a_corrupt_file(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photos = tmp_path / 'photos'
    photos.mkdir()
    write_demo_photo(photos / 'astronaut.png', size=(72, 96))
    (photos / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 40)

    def text(elem_id):
        return browser.find_element(By.ID, elem_id).text

    browser.get(server['url'])
    WebDriverWait(browser, 60).until(lambda b: 'Model loaded' in text('model-status'))
    assert 'RANDOM WEIGHTS' in text('model-status')  # the test prior has no checkpoint
    browser.find_element(By.CSS_SELECTOR, '#photos input[type=file]').send_keys(
        '\n'.join(str(photos / name) for name in ('astronaut.png', 'broken.png'))
    )
    WebDriverWait(browser, 60).until(lambda b: 'astronaut' in text('photos') and 'broken' in text('photos'))
    browser.find_element(By.ID, 'enhance').click()
    WebDriverWait(browser, RUN_TIMEOUT).until(lambda b: 'Enhanced' in text('run-status'))
    status = text('run-status')
    assert 'Enhanced 1 of 2 photo(s)' in status and 'with torch (cpu)' in status, status
    assert 'Failed: broken.png: not an image this app can read' in status, status
    assert 'Classes the prior saw (ADE20K)' in text('legend')
    links = WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, '#downloads a[href]'))
    hrefs = [a.get_attribute('href') for a in links]
    assert len(hrefs) == 1 and hrefs[0].endswith('/astronaut.png'), hrefs
    got = cv2.imdecode(np.frombuffer(_get(hrefs[0]), np.uint8), cv2.IMREAD_UNCHANGED)

    root = server['root']
    argv = [str(photos / 'astronaut.png'), '-opt', str(root / 'test.yml'), '--weights', str(root / 'net_g.pth')]
    assert E.main(argv + ['--output', str(tmp_path / 'cli'), '--device', 'cpu', '--no-progress']) == 0
    want = cv2.imread(str(tmp_path / 'cli' / 'astronaut.png'), cv2.IMREAD_UNCHANGED)
    assert got.shape == want.shape == (72, 96, 3) and got.dtype == want.dtype
    assert np.array_equal(got, want)
    assert not any(server['cwd'].iterdir())  # nothing written outside --output
    assert (server['out'] / 'uploads').is_dir() and any(server['out'].glob('run-*/astronaut.png'))
