"""Take the README's console screenshot from a running demo (Debian's Chromium, never a download).

    .venv/bin/python scripts/screenshot_console.py [--out docs/img/console.png] [--wait 40]

Starts the demo tree (broker, central, edges, cameras, the storyline at 4× speed), waits for the
story's alarms, logs in as admin, selects the top alarm and saves the page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gridwatch.demo import start_demo  # noqa: E402

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "console.png")
    parser.add_argument("--wait", type=float, default=40.0, help="seconds of storyline before the picture")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = start_demo(REPO / "configs" / "demo-site.yaml", Path(tmp) / "demo", speed=4.0)
        try:
            time.sleep(args.wait)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 900}, locale="en-GB")
                page.goto(tree.central_url + "/")
                page.get_by_test_id("login-username").fill(tree.login[0])
                page.get_by_test_id("login-password").fill(tree.login[1])
                page.get_by_test_id("login-submit").click()
                page.get_by_test_id("alarm-row").first.wait_for(timeout=15_000)
                rows = page.get_by_test_id("alarm-row")
                perimeter = rows.filter(has_text="Perimeter beam break")  # the one with a camera snapshot
                (perimeter.first if perimeter.count() else rows.first).click()
                page.wait_for_timeout(2500)  # snapshot image and tag dots
                page.mouse.move(0, 0)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            tree.stop()
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
