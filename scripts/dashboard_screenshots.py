"""Retake docs/images/dashboard.png and dashboard-trial.png from a finished study.

    python scripts/dashboard_screenshots.py --storage sqlite:///studies.db --name w-sweep-mnist

Starts studies/dashboard.py on a free port, opens the study page and its best trial's page in
Debian's headless chromium (as tests/test_dashboard.py does) and saves full-page screenshots.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import optuna
from playwright.sync_api import expect, sync_playwright

from storage import make_storage

REPO = Path(__file__).resolve().parents[1]

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1440, "height": 1064}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = p.parse_args()
    storage = make_storage(args.storage)
    best = optuna.load_study(study_name=args.name, storage=storage).best_trial
    study_id = storage.get_study_id_from_name(args.name)
    server = subprocess.Popen(
        [sys.executable, str(REPO / "studies" / "dashboard.py"), "--storage", args.storage, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base = re.search(r"(http://\S+/dashboard)", server.stdout.readline()).group(1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{base}/studies/{study_id}")
            expect(page.get_by_text(f"Best Trial (number={best.number})")).to_be_visible(timeout=30_000)
            page.wait_for_timeout(3000)  # let the charts draw
            page.screenshot(path=args.out / "dashboard.png", full_page=True)
            page.goto(f"{page.url}/trials")
            page.get_by_text(f"Trial {best.number}", exact=True).first.click()
            expect(page.get_by_role("img").first).to_be_visible(timeout=30_000)
            page.wait_for_timeout(2000)
            page.screenshot(path=args.out / "dashboard-trial.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
