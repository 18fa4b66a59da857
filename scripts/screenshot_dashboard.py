"""Take docs/dashboard.png from a running system (./run.sh under real
traffic): open the dashboard in Debian's Chromium, wait until the socket
is live and the snapshot is drawn, save a full-page picture.

    .venv/bin/python scripts/screenshot_dashboard.py [URL] [PATH]
"""

import sys

from playwright.sync_api import sync_playwright

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/"
path = sys.argv[2] if len(sys.argv) > 2 else "docs/dashboard.png"

with sync_playwright() as playwright:
    browser = playwright.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.goto(url)
    page.wait_for_function("window.dashboard && window.dashboard.messages > 0")
    page.wait_for_timeout(1500)
    page.screenshot(path=path, full_page=True)
    browser.close()
print(path)
