"""docs/app.png: the local web page with the shipped model, an unseen photo enhanced, the prior's
segmentation overlay shown. Needs Debian's ``chromium`` and ``chromium-driver`` and the app extras.

    python scripts/app_screenshot.py [--photo datasets/photos/LOL-v1/eval15/low/NAME.png]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_for(url, proc, seconds=180):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f'deepspg-app exited with {proc.returncode}')
        try:
            opener.open(url, timeout=10).read()
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f'deepspg-app did not answer at {url} in {seconds} s')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    folder = os.path.join(ROOT, 'datasets', 'photos', 'LOL-v1', 'eval15', 'low')
    parser.add_argument('--photo', help='the photo to upload (default: the first unseen photo by name)')
    parser.add_argument('--out', default=os.path.join(ROOT, 'docs', 'app.png'))
    args = parser.parse_args(argv)
    photo = os.path.abspath(args.photo or os.path.join(folder, sorted(os.listdir(folder))[0]))

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    work = tempfile.mkdtemp(prefix='deepspg_app_shot_')
    cmd = [sys.executable, '-m', 'deepspg_basicsr.app', '--device', 'cpu', '--port', str(port), '--output', work]
    proc = subprocess.Popen(cmd, env=dict(os.environ, GRADIO_ANALYTICS_ENABLED='False'))
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1280,2300', '--hide-scrollbars'):
        options.add_argument(flag)
    driver = None
    try:
        wait_for(f'http://127.0.0.1:{port}/', proc)
        driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
        driver.get(f'http://127.0.0.1:{port}/')
        text = lambda elem_id: driver.find_element(By.ID, elem_id).text  # noqa: E731
        WebDriverWait(driver, 120).until(lambda d: 'Model loaded' in text('model-status'))
        driver.find_element(By.CSS_SELECTOR, '#photos input[type=file]').send_keys(photo)
        WebDriverWait(driver, 60).until(lambda d: os.path.basename(photo).split('.')[0] in text('photos'))
        driver.find_element(By.ID, 'enhance').click()
        WebDriverWait(driver, 600).until(lambda d: 'Enhanced' in text('run-status'))
        time.sleep(3)  # the pictures finish loading
        driver.save_screenshot(args.out)
        print(f'wrote {args.out}: {text("model-status")!r}')
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        proc.wait(30)


if __name__ == '__main__':
    main()
