"""The demo page in a real browser: Playwright driving Debian's headless chromium.

One browser for the whole module. Screenshots of every stage at a laptop width (1280 px)
and a phone width (390 px) go to ``$VO2SPIKE_SCREENSHOTS`` (default tests/screenshots/),
for a person to look at.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from pathlib import Path

import pytest

from vo2spike.data.read import MEASURE_FILE, SUBJECT_FILE
from vo2spike.data.simulate import write_cohort
from vo2spike.demo.app import DemoApp
from vo2spike.demo.server import DemoServer

from .conftest import SHARED

CHROMIUM = Path("/usr/bin/chromium")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None,
                       reason="the playwright package is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(not CHROMIUM.is_file(),
                       reason=f"{CHROMIUM} not found (apt-get install chromium; .ci/run does)"),
]
SHOTS = Path(os.environ.get("VO2SPIKE_SCREENSHOTS",
                            Path(__file__).resolve().parent / "screenshots"))
WIDTHS = {"laptop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
YOYO = SHARED / "yoyo-k5"


def start(app: DemoApp) -> DemoServer:
    server = DemoServer(("127.0.0.1", 0), app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server(run_dir):
    s = start(DemoApp(run_dir, yoyo_root=YOYO if YOYO.is_dir() else None))
    s.warm_up()
    yield s
    s.shutdown()
    s.server_close()
    s.app.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


class Watched:
    """A page with its console errors and every URL it requested."""

    def __init__(self, browser, server: DemoServer, width: str) -> None:
        self.page = browser.new_page(viewport=WIDTHS[width])
        self.width, self.base = width, server.url
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def external(self) -> list[str]:
        return [u for u in self.requests
                if not (u.startswith(self.base + "/") or u.startswith(("data:", "blob:")))]

    def canvas(self, selector: str = "#stage-canvas") -> str:
        return self.page.evaluate(f"document.querySelector('{selector}').toDataURL()")

    def inked(self) -> float:
        """Fraction of the stage canvas's pixels that are not white."""
        return self.page.evaluate("""() => {
            const c = document.getElementById('stage-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i] < 245 || d[i + 1] < 245 || d[i + 2] < 245) n++;
            }
            return n / (d.length / 4);
        }""")

    def wait_ready(self, workout: str | None = None) -> None:
        # Selectors, not wait_for_function: the page's CSP forbids eval, rightly.
        key = f'[data-trace-key^="workout={workout}&"]' if workout else ""
        self.page.wait_for_selector(f"body[data-state=ready]{key}", state="attached",
                                    timeout=120_000)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.locator("#stage-area").screenshot(path=str(SHOTS / f"{self.width}-{name}.png"))


def api(server: DemoServer, path: str) -> dict:
    with urllib.request.urlopen(server.url + path, timeout=120) as r:
        return json.loads(r.read())


def number(page, selector: str) -> float:
    return float(page.locator(selector).get_attribute("data-value"))


@pytest.mark.parametrize("width", ["laptop", "phone"])
def test_demo_page_runs_every_stage_of_every_workout(browser, server, width):
    w = Watched(browser, server, width)
    page = w.page
    page.goto(server.url + "/")
    w.wait_ready("incremental")
    assert page.locator("#workout-kind").inner_text() == "SIMULATED"

    # Stage 1 plays: the canvas is drawn and changes over time.
    page.locator("#stage-canvas").focus()
    page.keyboard.press("Space")  # play
    assert page.locator("#play").get_attribute("aria-pressed") == "true"
    first = w.canvas()
    page.wait_for_timeout(700)
    assert w.canvas() != first, "the animation does not change over time"
    assert w.inked() > 0.03, "the canvas is blank"
    page.keyboard.press("Space")  # pause
    assert page.locator("#play").get_attribute("aria-pressed") == "false"

    # Every stage, by keyboard (arrow = next stage, drawn whole when paused).
    page.wait_for_selector("body[data-compression=ready]", state="attached", timeout=60_000)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    for stage in range(1, 7):
        if stage > 1:
            page.keyboard.press("ArrowRight")
        assert page.locator("#stage-title").inner_text().startswith(f"Stage {stage} of 6")
        assert page.locator(f"#stage-tabs button[data-stage='{stage}']").get_attribute(
            "aria-current") == "step"
        assert w.inked() > 0.03, f"stage {stage} is blank"
        w.shot(f"incremental-stage{stage}")

    # The numbers shown are the model's (the API's) for the window shown.
    trace = api(server, "/api/trace?workout=incremental")
    i = int(page.locator("#window").input_value())
    assert number(page, "#vo2-pred") == pytest.approx(trace["windows"]["vo2_pred"][i])
    shown = float(page.locator("#vo2-pred").inner_text().replace(",", ""))
    assert abs(shown - trace["windows"]["vo2_pred"][i]) <= 0.5  # rounded to whole mL/min
    assert number(page, "#vo2max-pred") == trace["summary"]["vo2max_pred_ml_min"]
    assert number(page, "#vo2max-pred-kg") == trace["summary"]["vo2max_pred_ml_kg_min"]
    assert number(page, "#rmse") == trace["summary"]["rmse"]
    page.locator("#window").focus()
    page.keyboard.press("ArrowLeft" if i > 0 else "ArrowRight")
    j = int(page.locator("#window").input_value())
    assert j != i and number(page, "#vo2-pred") == pytest.approx(trace["windows"]["vo2_pred"][j])

    # Each workout changes what is drawn (stage 5: predictions against measured VO2).
    workouts = [o["id"] for o in api(server, "/api/workouts")["workouts"]]
    assert workouts[:3] == ["incremental", "steady", "intervals"]
    if YOYO.is_dir():
        assert "real-yoyo" in workouts
    page.locator("#stage-tabs button[data-stage='5']").click()
    drawn = {}
    for workout in workouts:
        page.select_option("#workout", workout)
        w.wait_ready(workout)
        drawn[workout] = w.canvas()
        kind = api(server, f"/api/trace?workout={workout}")["workout"]["kind"]
        assert page.locator("#workout-kind").inner_text().startswith(kind.upper())
        if workout != "incremental":
            for stage in range(1, 7):
                page.locator(f"#stage-tabs button[data-stage='{stage}']").click()
                assert w.inked() > 0.03
                w.shot(f"{workout}-stage{stage}")
            page.locator("#stage-tabs button[data-stage='5']").click()
        assert number(page, "#vo2max-pred") == api(
            server, f"/api/trace?workout={workout}")["summary"]["vo2max_pred_ml_min"]
    assert len(set(drawn.values())) == len(drawn), "two workouts draw the same picture"

    # The person controls re-run the model.
    before = number(page, "#vo2max-pred")
    page.fill("#age", "64")
    page.fill("#weight", "101")
    page.locator("#rerun").click()
    w.wait_ready()
    page.wait_for_selector('body[data-state=ready][data-trace-key*="age=64"]', state="attached")
    assert number(page, "#vo2max-pred") != before
    page.fill("#age", "300")
    page.locator("#rerun").click()  # the browser's own range check stops it
    assert page.locator("#age").evaluate("e => e.validity.rangeOverflow")

    page.screenshot(path=str(SHOTS / f"{width}-page.png"), full_page=True)
    assert w.errors == [], w.errors
    assert w.external() == [], w.external()
    page.close()


def test_upload_in_the_browser(browser, server, tmp_path):
    cohort = write_cohort(tmp_path / "cohort", n_tests=1, seed=21)
    w = Watched(browser, server, "laptop")
    page = w.page
    page.goto(server.url + "/")
    w.wait_ready()
    page.set_input_files("#file-subject", str(cohort / SUBJECT_FILE))
    page.set_input_files("#file-measure", str(cohort / MEASURE_FILE))
    page.locator("#upload-submit").click()
    page.wait_for_selector("body[data-upload=done]", state="attached", timeout=60_000)
    summary = page.locator("#upload-summary")
    assert "R²" in summary.inner_text() and "RMSE" in summary.inner_text()
    assert float(summary.get_attribute("data-rmse")) > 0
    assert page.locator("#upload-error").is_hidden()
    page.locator("#upload-result").screenshot(path=str(SHOTS / "laptop-upload-result.png"))

    bad = tmp_path / "bad_measure.csv"
    lines = (cohort / MEASURE_FILE).read_text().splitlines()
    cells = lines[6].split(",")
    cells[lines[0].split(",").index("HR")] = "fast"  # line 7, column HR
    lines[6] = ",".join(cells)
    bad.write_text("\n".join(lines))
    page.set_input_files("#file-measure", str(bad))
    page.locator("#upload-submit").click()
    page.wait_for_selector("body[data-upload=error]", state="attached", timeout=60_000)
    error = page.locator("#upload-error").inner_text()
    assert error.startswith("bad_measure.csv: line 7, column 'HR': 'fast' is not a number")
    assert "Traceback" not in error
    page.locator(".upload").screenshot(path=str(SHOTS / "laptop-upload-error.png"))

    # A K5 export needs the person: the page says so before sending anything.
    page.check("input[name=kind][value=k5]")
    page.set_input_files("#file-k5", str(bad))
    page.locator("#upload-submit").click()
    assert "age" in page.locator("#upload-error").inner_text()
    # Chromium logs the deliberate bad upload's 400 answer; nothing else may be logged.
    expected = "the server responded with a status of 400"
    assert [e for e in w.errors if expected not in e] == [] and w.external() == []
    assert sum(expected in e for e in w.errors) == 1
    page.close()


@pytest.mark.parametrize("width", ["laptop", "phone"])
def test_info_pages(browser, server, width):
    w = Watched(browser, server, width)
    page = w.page
    info = api(server, "/api/model")
    page.goto(server.url + "/how.html")
    page.wait_for_selector("body[data-state=ready]", state="attached")
    text = page.locator("main").inner_text()
    assert f"{info['parameters']:,} parameters" in text
    assert "arXiv:2212.02233" in text and "SIMULATED" in text
    page.screenshot(path=str(SHOTS / f"{width}-how.png"), full_page=True)
    page.get_by_role("link", name="Data & methods").click()
    page.wait_for_selector("body[data-state=ready]", state="attached")
    text = page.locator("main").inner_text()
    assert "10.13026/7ezk-j442" in text and "CC BY-NC-SA 4.0" in text
    assert "Oxford-NIL/YoYoTest" in text
    if info["metrics"]["evaluation"]:
        r2 = next(iter(info["metrics"]["evaluation"]["models"].values()))["vo2_ml_min"]["r2"]
        assert f"{r2:.3f}" in text
    page.screenshot(path=str(SHOTS / f"{width}-data.png"), full_page=True)
    assert w.errors == [] and w.external() == []
    page.close()


def test_missing_model_page(browser, tmp_path):
    s = start(DemoApp(tmp_path / "missing-model"))
    try:
        w = Watched(browser, s, "laptop")
        w.page.goto(s.url + "/")
        w.page.wait_for_selector("body[data-state=error]", state="attached")
        banner = w.page.locator("#model-error")
        assert banner.is_visible() and "missing-model" in banner.inner_text()
        assert "Traceback" not in w.page.content()
        w.page.close()
    finally:
        s.shutdown()
        s.server_close()


def test_fit_upload_in_the_browser(browser, server, tmp_path):
    """A watch's FIT file through the page: the results say which input set was used."""
    from .test_fit import graded_run, write_fit

    fit = write_fit(tmp_path / "Morning_Run.fit", graded_run())
    records = graded_run()
    for r in records:
        del r["enhanced_respiration_rate"]
    anon = write_fit(tmp_path / "anon.fit", records, profile=None)
    w = Watched(browser, server, "laptop")
    page = w.page
    page.goto(server.url + "/")
    w.wait_ready()
    page.check("input[name=kind][value=fit]")
    assert page.locator(".fit-only").is_visible() and page.locator(".pn-only").is_hidden()
    assert page.locator(".k5-only").is_hidden()
    assert "only if the watch file has no user profile" in page.locator("#fit-hint").inner_text()
    page.set_input_files("#file-fit", str(fit))
    page.locator("#upload-submit").click()  # no person typed: the file's user_profile
    page.wait_for_selector("body[data-upload=done]", state="attached", timeout=60_000)
    inputs = page.locator("#upload-inputs")
    assert inputs.get_attribute("data-input-set") == "speed,hr,rr"
    assert "Inputs: speed, heart rate, breathing rate (a watch" in inputs.inner_text()
    summary = page.locator("#upload-summary").inner_text()
    assert "39 windows" in summary and "A watch measures no VO2" in summary
    assert page.locator("#upload-error").is_hidden()
    page.locator(".upload").screenshot(path=str(SHOTS / "laptop-upload-fit.png"))

    # Without a user profile the server asks for the person; typed, it predicts.
    page.set_input_files("#file-fit", str(anon))
    page.locator("#upload-submit").click()
    page.wait_for_selector("body[data-upload=error]", state="attached", timeout=60_000)
    error = page.locator("#upload-error").inner_text()
    assert error.startswith("anon.fit: the watch file has no user profile") and "/tmp" not in error
    for field, value in [("age", "41"), ("weight", "61"), ("height", "166")]:
        page.fill(f"#fit-{field}", value)
    page.select_option("#fit-sex", "1")
    page.locator("#upload-submit").click()
    page.wait_for_selector("body[data-upload=done]", state="attached", timeout=60_000)
    assert inputs.get_attribute("data-input-set") == "speed,hr"
    assert inputs.inner_text().startswith("Inputs: speed, heart rate (a watch)")
    page.locator(".upload").screenshot(path=str(SHOTS / "laptop-upload-fit-typed.png"))
    expected = "the server responded with a status of 400"
    assert [e for e in w.errors if expected not in e] == [] and w.external() == []
    assert sum(expected in e for e in w.errors) == 1
    page.close()
