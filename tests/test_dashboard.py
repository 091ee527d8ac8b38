"""`studies/dashboard.py` as a user meets it: a real optuna-dashboard process on a real smoke
study, looked at by a real headless browser (Debian's chromium, driven by playwright), and
read while another process writes trials into the same SQLite file."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from storage import make_storage
from studies import dashboard
from studies.service.budgets import BUDGETS
from studies.service.catalogue import STUDIES
from studies.service.notes import About, study_note
from tests.smoke_study import REPO, SmokeStudy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 30_000  # a React app on a loaded 2-core machine


@contextmanager
def dashboard_process(url: str, folder: Path, *args: str) -> Iterator[str]:
    """`python studies/dashboard.py --storage URL --port 0` running; yields the URL it prints."""
    command = [sys.executable, str(REPO / "studies" / "dashboard.py"), "--storage", url, *args]
    with serving(command, folder) as base:
        yield base


@contextmanager
def serving(command: list[str], folder: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """The dashboard `command` (plus `--port 0`) running in `folder`; yields the URL it prints."""
    out, err = folder / "dashboard.out", folder / "dashboard.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--port", "0"], cwd=folder, env=env, stdout=stdout, stderr=stderr, text=True
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"http://127\.0\.0\.1:\d+/dashboard", out.read_text())):
            assert process.poll() is None, f"dashboard exited {process.returncode}: {err.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"dashboard printed no URL: {err.read_text()[-2000:]}"
            time.sleep(0.2)
        yield found.group(0)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"Debian's chromium is not installed at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    yield context.new_page()
    context.close()


def open_study_page(page: Page, base: str, name: str) -> str:
    """From the study list, as a user: click the study; returns the study page's URL."""
    page.goto(base)
    page.get_by_text(name, exact=False).first.click()
    expect(page).to_have_url(re.compile(r"/dashboard/studies/\d+$"))
    return page.url


@pytest.mark.slow
def test_browser_shows_the_studys_trials_learning_curves_images_and_note(smoke_study: SmokeStudy, page: Page) -> None:
    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.url)
    trials = study.trials
    with dashboard_process(smoke_study.url, smoke_study.folder) as base:
        study_url = open_study_page(page, base, smoke_study.name)
        expect(page.get_by_text(f"Best Trial (number={study.best_trial.number})")).to_be_visible()
        # the learning curves: the "Intermediate values" chart has one line per trial
        chart = page.locator(".MuiCard-root", has_text="Intermediate values")
        for trial in trials:
            expect(chart.get_by_text(f"trial #{trial.number}", exact=True)).to_be_visible()

        page.goto(f"{study_url}/trials")
        for trial in trials:
            page.get_by_text(f"Trial {trial.number}", exact=True).first.click()
            detail = page.get_by_role("heading", name=re.compile(rf"^Trial {trial.number} \(trial_id="))
            expect(detail).to_be_visible()
            for step, value in trial.intermediate_values.items():  # the trial's curve, epoch by epoch
                expect(page.get_by_text(f"{step} {value!r}", exact=True)).to_be_visible()
            assert_artifact_image_shown(page, trial, smoke_study.artifact_dir)

        page.goto(f"{study_url}/note")
        expect(page.get_by_text("Searches")).to_be_visible()
        expect(page.get_by_text(re.compile(r"python\S* -m studies\.cli\.run .*--study w-sweep"))).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Primary verdict: ")).first).to_be_visible()  # refreshed after each round
        expect(page.get_by_text("Control, raw pixels").first).to_be_visible()


def assert_artifact_image_shown(page: Page, trial: optuna.trial.FrozenTrial, artifact_dir: Path) -> None:
    """The trial's reconstruction grid is on its page, fetched from the artifact store and
    decoded by the browser at the size of the stored PNG."""
    artifact_id = trial.user_attrs["artifact:reconstructions"]
    image = page.locator(f'img[src*="{artifact_id}"]')
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    with Image.open(artifact_dir / artifact_id) as stored:
        assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == list(stored.size)


WRITER = """
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="live", storage=sys.argv[1])
for _ in range(int(sys.argv[2])):
    trial = study.ask()
    w = trial.suggest_float("w", 0.0, 1.0)
    for epoch in (1, 2, 3):
        trial.report(w * epoch / 3, epoch)
    trial.set_user_attr("test_linear", {"0.01": w, "0.1": w})
    study.tell(trial, w)
"""


@pytest.mark.slow
def test_the_printed_dashboard_command_serves_the_study_from_a_fresh_shell(
    smoke_study: SmokeStudy, tmp_path: Path
) -> None:
    """The `browse:` line the study printed, run as a user pastes it: another folder, a shell
    whose PATH has no venv and no project folder on it."""
    (line,) = [line for line in smoke_study.stdout.splitlines() if line.startswith("browse: ")]
    command = shlex.split(line.removeprefix("browse: "))
    fresh_shell = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    with serving(command, tmp_path, env=fresh_shell) as base:
        assert smoke_study.name in study_names(base)


def study_names(base: str) -> list[str]:
    """The studies a running dashboard at `base` lists, through its JSON API."""
    with urllib.request.urlopen(f"{base.removesuffix('/dashboard')}/api/studies", timeout=60) as response:
        return [study["study_name"] for study in json.load(response)["study_summaries"]]


@pytest.mark.slow
def test_dashboard_reads_while_a_study_writes_the_same_sqlite_file(tmp_path: Path, page: Page) -> None:
    """DESIGN.md: SQLite + a reader while a study writes can give "database is locked". The file
    is in WAL mode (make_storage, as `studies/run.py` creates it), so neither side may see it:
    here a plain Optuna process writes trials as fast as it can while the dashboard is polled
    over HTTP and watched by a browser."""
    url, trials = f"sqlite:///{tmp_path / 'studies.db'}", 150
    optuna.create_study(study_name="live", storage=make_storage(url), direction="maximize")
    with dashboard_process(url, tmp_path) as base:
        study_url = open_study_page(page, base, "live")
        api = f"{base.removesuffix('/dashboard')}/api/studies/{study_url.rsplit('/', 1)[1]}"
        writer = subprocess.Popen([sys.executable, "-c", WRITER, url, str(trials)], stderr=subprocess.PIPE, text=True)
        seen = poll_until_done(api, writer)
        assert writer.returncode == 0 and "database is locked" not in writer.stderr.read(), "the writer failed"
        assert len(seen) > 10 and min(seen) < trials, f"the polls did not overlap the writes: {seen}"
        assert trial_count_settles(api, trials) == trials
        page.goto(f"{study_url}/trials")
        expect(page.get_by_text(f"{trials} Trials", exact=True)).to_be_visible()
    log = (tmp_path / "dashboard.err").read_text()
    assert "database is locked" not in log and "Exception" not in log, log[-2000:]


def poll_until_done(api: str, writer: subprocess.Popen[str]) -> list[int]:
    """Poll the study's API from two threads (as the browser's parallel requests) until the
    writer exits; return the trial counts seen (every answer must be a 200 with JSON)."""
    seen: list[int] = []
    errors: list[str] = []

    def poll() -> None:
        while writer.poll() is None:
            try:
                with urllib.request.urlopen(api, timeout=60) as response:
                    seen.append(len(json.load(response)["trials"]))
            except Exception as error:  # noqa: BLE001  (any failure is the finding)
                errors.append(repr(error))
                return

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    writer.wait(timeout=60)
    assert not errors, errors
    return seen


def trial_count_settles(api: str, expected: int) -> int:
    """The study's trial count once the dashboard's trial cache has expired (2-10 s TTL)."""
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(api, timeout=60) as response:
            count = len(json.load(response)["trials"])
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(1)


def test_missing_storage_is_a_clear_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "studies.db"
    assert dashboard.main(["--storage", f"sqlite:///{missing}", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no SQLite database at") and err.count("\n") == 1
    assert not missing.parent.exists()


@pytest.mark.slow
def test_a_taken_port_is_a_clear_error(smoke_study: SmokeStudy, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert dashboard.main(["--storage", smoke_study.url, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1


def test_study_note_names_search_data_budget_and_command_without_the_password() -> None:
    command = "python studies/run.py --study joint --storage postgresql+psycopg://me:s3cret@db:5432/sidae"
    note = study_note(About(STUDIES["joint"], BUDGETS["gpu"], "cifar10", command))
    assert STUDIES["joint"].summary in note and "`cifar10`" in note
    assert "200 epochs per trial on the whole training set, 60 trials, fine-tuning 2000 steps" in note
    assert "s3cret" not in note and "postgresql+psycopg://me:***@db:5432/sidae" in note
    grid = study_note(About(STUDIES["w-sweep"], BUDGETS["smoke"], "mnist", ""))
    assert "grid of 3 points (seed: 0; w: 0.0, 0.5, 1.0)" in grid and "no command recorded" in grid
