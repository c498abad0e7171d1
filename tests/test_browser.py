"""The explorer in a real browser: `panel serve apps/explorer_app.py` against a runs folder with real runs, driven by
headless Chromium through Playwright. Screenshots go to tests/artifacts/ (look at them)."""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BROKEN_ENTRIES, DAMAGED_ON_OPEN, REPO, copy_run, make_broken_entries
from headless import CHROMIUM, ExplorerServer, free_port, launch_context, stop
from core import Run, TrainConfig
from explorer.launcher import launch

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "tests" / "artifacts"

if not Path(CHROMIUM).exists():
    if os.environ.get("DCX_REQUIRE_BROWSER"):
        pytest.fail(f"{CHROMIUM} is missing (apt-get install -y chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (make test installs it where it can)", allow_module_level=True)


@contextlib.contextmanager
def explorer_page(browser, root, *extra):
    """`panel serve apps/explorer_app.py --runs root` on a free port and a page opened on it; the server stops after."""
    with ExplorerServer(root, *extra) as server:
        yield server.open(browser.new_page())


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory, digits_run_template):
    root = tmp_path_factory.mktemp("runs")
    copy_run(digits_run_template, root / "digits-finished")  # DIGITS_RUN: 60 steps, snapshots at 1, 20, 40, 60
    return root


@pytest.fixture(scope="module")
def server(runs_folder):
    with ExplorerServer(runs_folder, log=runs_folder / "server.log") as server:
        server.wait_listening(90)
        yield server.url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"pw-profile-{os.getpid()}"
    shutil.rmtree(profile, ignore_errors=True)
    with sync_playwright() as p:
        ctx = launch_context(p, profile)
        yield ctx
        ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


def shot(page, name, docs: str | None = None):
    """A full-page screenshot in tests/artifacts/; with `docs` and DCX_DOCS_IMG=1 in the environment, also the
    picture docs/explorer.md shows as docs/img/<docs>.png (`DCX_DOCS_IMG=1 make test` retakes them)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if docs and os.environ.get("DCX_DOCS_IMG"):
        page.screenshot(path=str(REPO / "docs" / "img" / f"{docs}.png"), full_page=True)


def text_of(page, selector) -> str:
    return page.locator(selector).first.evaluate("e => (e.shadowRoot || e).textContent || ''")


def wait_text(page, selector, pattern, timeout=60):
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        last = text_of(page, selector)
        if re.search(pattern, last):
            return last
        time.sleep(0.25)
    raise AssertionError(f"{selector} never matched {pattern!r}; last text: {last!r}")


def test_every_page_of_a_server_renders_not_only_its_first(server, runs_folder, browser):
    """A server's later pages draw the run list and the run (the Compare tab's Tabulator script was sent with the
    first page only: every later page stayed blank). Two pages on the module's server: the second is a later one
    whatever ran before. The page shows a run of the folder: the finished one, or the one the live test below
    started if it ran first (pytest-xdist may run a module's tests in another order)."""
    runs = "|".join(re.escape(p.name) for p in runs_folder.iterdir() if (p / "config.json").is_file())
    for _ in range(2):
        page = browser.new_page()
        page.goto(server)
        wait_text(page, ".run-status", rf"\b({runs})\b", timeout=60)
        page.wait_for_selector(".curves .bk-Canvas", timeout=60_000)
        page.close()


def test_explorer_shows_a_run_live_and_steers_it(server, runs_folder, browser):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)

    # the finished run is picked, its curves and its t-SNE map render
    wait_text(page, ".run-status", r"digits-finished")
    page.wait_for_selector(".curves .bk-Canvas", timeout=60_000)
    assert page.locator(".curves .bk-Canvas").count() >= 3  # Wasserstein, losses, accuracy, cluster health
    wait_text(page, ".map-status", r"t-SNE of Z at step 60", timeout=90)
    page.wait_for_selector(".scatter .bk-Canvas", timeout=30_000)
    shot(page, "01-finished-run")

    # hovering a point shows its image
    src = hover_until_tooltip(page, ".scatter .bk-Canvas")
    assert src.startswith("data:image/png;base64,")
    shot(page, "01b-hover")

    # the snapshot slider goes back in time: the map of an earlier step is computed and shown
    handle = page.locator(".snapshot-slider .noUi-handle").first
    handle.focus()
    handle.press("ArrowLeft")
    wait_text(page, ".map-status", r"t-SNE of Z at step 40 (in|\()", timeout=90)
    shot(page, "02-earlier-snapshot")

    # while a new map computes (UMAP's first, seconds in a fresh worker), the last map stays drawn with a note
    page.locator(".proj-kind button").filter(has_text="UMAP").first.click()
    wait_text(page, ".map-status", r"computing the UMAP map of Z at step 40", timeout=30)
    assert coloured_pixels(page.locator(".scatter .bk-Canvas").first.screenshot()) > 300
    shot(page, "02b-last-map-kept-while-computing")
    wait_text(page, ".map-status", r"UMAP of Z at step 40 (in|\()", timeout=120)
    page.locator(".proj-kind button").filter(has_text="t-SNE").first.click()
    wait_text(page, ".map-status", r"t-SNE of Z at step 40 \(cached\)", timeout=30)

    # a box selection in the map lists the selected images
    box = page.locator(".scatter .bk-Canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.8, steps=8)
    page.mouse.up()
    selected = wait_text(page, ".selection", r"\d+ selected images", timeout=30)
    assert page.locator(".selection img").count() > 0
    n_selected = int(re.search(r"(\d+) selected", selected).group(1))
    assert n_selected > 10
    shot(page, "03-selection")

    # the selection comes out as a CSV download: one row per selected image, file name (or index) and cluster
    page.get_by_text("Export / name").first.click()
    wait_text(page, ".export-sel-csv", rf"Selection \({n_selected}\) → CSV", timeout=30)
    with page.expect_download(timeout=30_000) as download:
        page.locator(".export-sel-csv button").click()
    csv_lines = Path(download.value.path()).read_text().splitlines()
    assert csv_lines[0] == "index,name,cluster,cluster_name,confidence,label" and len(csv_lines) == n_selected + 1
    assert download.value.suggested_filename == "digits-finished-step40-selection.csv"
    shot(page, "03b-export")

    # the confusion matrix and the gallery; a click on a cell selects exactly that cell's images
    page.get_by_text("Confusion / sizes").first.click()
    page.wait_for_selector(".confusion .bk-Canvas", timeout=30_000)
    box = page.locator(".confusion .bk-Canvas").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.45)
    said = wait_text(page, ".run-alert", r"selected the \d+ images? of \S+ in c\d+", timeout=30)
    count, label, cluster = re.search(r"selected the (\d+) images? of (\S+) in c(\d+)", said).groups()
    snap, probe = Run(runs_folder / "digits-finished").snapshot(40), Run(runs_folder / "digits-finished").probe()
    expected = int(((snap.pred == int(cluster)) & (snap.labels == probe.class_names.index(label))).sum())
    assert int(count) == expected
    if expected:
        wait_text(page, ".selection", rf"\b{expected} selected images?", timeout=30)  # "1 selected image"
    shot(page, "04a-confusion-cell")
    page.get_by_text("Most confident per cluster").first.click()
    assert page.locator(".gallery .gallery-row").count() == 10  # one row per cluster (an empty one says so)
    shot(page, "04-gallery")

    # a click on a gallery row selects its cluster's images, so does a click on a legend entry; a click on an image
    # of the selection grid shows its nearest images
    row = page.locator(".gallery .gallery-row[data-pick]").last
    k = int(row.get_attribute("data-pick"))
    row.click()
    said = wait_text(page, ".run-alert", rf"selected the \d+ images? of cluster c{k}\b", timeout=30)
    assert int(re.search(r"selected the (\d+)", said).group(1)) == int((snap.pred == k).sum())
    entry = page.locator(".map-legend .legend-row[data-pick]").first
    k = int(entry.get_attribute("data-pick"))
    entry.click()
    said = wait_text(page, ".run-alert", rf"selected the \d+ images? of cluster c{k}\b", timeout=30)
    assert int(re.search(r"selected the (\d+)", said).group(1)) == int((snap.pred == k).sum())
    page.locator(".bk-tab").filter(has_text=re.compile(r"^Selection$")).first.click()
    wait_text(page, ".selection", rf"\b{int((snap.pred == k).sum())} selected images?", timeout=30)
    page.locator(".selection .sel-cell").first.click()
    wait_text(page, ".selection", r"its 16 nearest images in Z, nearest first", timeout=30)
    shot(page, "04b-legend-gallery-grid-clicks")

    # start a long run from the page; it appears as running in the run list without reloading
    page.locator(".start-steps input").fill("100000")
    page.locator(".start-btn button").click()
    wait_text(page, ".start-alert", r"started digits-dccs")
    wait_text(page, ".run-status", r"running", timeout=120)
    live = next(p for p in runs_folder.iterdir() if p.name.startswith("digits-dccs"))
    options = page.locator(".run-select select option").all_inner_texts()
    assert any("running" in o for o in options) and any("finished" in o for o in options)

    # the beta_Aug slider changes beta_Aug of the running run at its next step
    beta = page.locator(".beta-slider .noUi-handle").first
    wait_until_enabled(page, ".beta-slider .noUi-handle")
    beta.focus()
    beta.press("ArrowRight")  # 2.0 -> 2.5
    wait_text(page, ".run-alert", r"β_Aug → 2.5")
    deadline = time.time() + 120
    while time.time() < deadline and not Run(live).metrics("set"):
        time.sleep(0.5)
    sets = Run(live).metrics("set")
    assert sets and sets[0]["value"] == 2.5 and sets[0]["source"] == "control"
    shot(page, "05-live-run-beta")

    # and the stop button stops it (with a checkpoint)
    page.locator(".stop-btn button").click()  # the first click asks for a second one
    wait_text(page, ".stop-btn", r"Click again to stop", timeout=30)
    page.locator(".stop-btn button").click()
    wait_text(page, ".run-status", r"stopped", timeout=120)
    assert Run(live).checkpoint_steps()
    shot(page, "06-stopped")

    # two runs side by side
    page.locator(".compare input").check()
    wait_text(page, ".run-status-b", r"digits-", timeout=30)
    page.wait_for_selector(".scatter-b .bk-Canvas", timeout=90_000)
    shot(page, "07-side-by-side", docs="side-by-side")
    assert not errors, errors


def hover_until_tooltip(page, canvas) -> str:
    """Move over the map until a tooltip with an image appears; returns the image's src."""
    box = page.locator(canvas).first.bounding_box()
    for fy in (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8):
        for fx in (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.35, 0.45, 0.55, 0.65):
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            time.sleep(0.15)
            tip = page.locator(".tip img")
            if tip.count() and tip.first.is_visible():
                return tip.first.get_attribute("src")
    raise AssertionError("no tooltip image appeared over the map")


def wait_until_enabled(page, selector, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        disabled = page.locator(selector).first.evaluate(
            "e => e.closest('[disabled]') !== null || e.getAttribute('disabled') !== null")
        if not disabled:
            return
        time.sleep(0.25)


def test_bad_runs_do_not_break_the_page(tmp_path, browser, digits_run_template):
    """A truncated metrics line, a corrupt snapshot, a failed run and a missing folder: messages, not crashes."""
    root = tmp_path / "runs"
    copy_run(digits_run_template, root / "damaged")
    with open(root / "damaged" / "metrics.jsonl", "a") as f:
        f.write('{"kind":"train","step":61,"wasser')  # torn last line
    (root / "damaged" / "snapshots" / "step_00000060.npz").write_bytes(b"PK\x03\x04broken")
    failed = launch(root, dataset="digits", steps=5, extra_args=("--num-clusters", "1"))
    while json.loads((failed / "launch.json").read_text()) and not (failed / "train.log").read_text():
        time.sleep(0.2)
    time.sleep(3)
    with explorer_page(browser, root, "--run", "damaged") as page:
        wait_text(page, ".run-status", r"damaged")
        wait_text(page, ".run-alert", r"step 60 is damaged")
        page.wait_for_selector(".curves .bk-Canvas", timeout=60_000)  # the readable part still shows
        shot(page, "08-damaged-run")
        labels = page.locator(".run-select select option").all_inner_texts()
        page.locator(".run-select select").select_option(label=next(t for t in labels if "failed" in t))
        wait_text(page, ".run-status", r"failed")
        wait_text(page, ".run-status", r"at least 2")
        shot(page, "09-failed-run")
        page.locator(".runs-input input").fill(str(root / "no-such-folder"))
        page.locator(".runs-open button").click()
        wait_text(page, ".folder-alert", r"does not exist")
        shot(page, "10-missing-folder")
        page.locator(".runs-input input").fill("/etc")  # the page opens folders below its runs root only
        page.locator(".runs-open button").click()
        wait_text(page, ".folder-alert", r"/etc is outside .*the only folder this page may use")


def test_every_kind_of_broken_entry_is_listed_and_the_good_run_still_works(tmp_path, browser, digits_run_template):
    """A good finished run among entries damaged in 13 ways (conftest.BROKEN_ENTRIES, DAMAGED_ON_OPEN): the page
    loads, each broken entry is listed with its line (naming its folder), opening a damaged run shows what is wrong,
    the good run shows its curves and its map, and a run added afterwards appears without a reload."""
    root = tmp_path / "runs"
    copy_run(digits_run_template, root / "good")
    make_broken_entries(root, digits_run_template)
    with explorer_page(browser, root) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        deadline = time.time() + 60
        while time.time() < deadline and page.locator(".run-select select option").count() < 14:
            time.sleep(0.25)
        labels = page.locator(".run-select select option").all_inner_texts()
        assert len(labels) == 14, labels
        for name, pattern in BROKEN_ENTRIES.items():
            assert any(t.startswith(f"{name} — broken: ") and re.search(pattern, t) for t in labels), (name, labels)
        wait_text(page, ".run-status", r"broken")  # the newest entry, shown first, is a broken one
        shot(page, "12-broken-entries")
        select = page.locator(".run-select select")
        select.select_option(label=next(t for t in labels if t.startswith("cfg-wrong-types")))
        wait_text(page, ".run-status", r"cfg-wrong-types: settings\.steps is 'abc'")
        for name, pattern in DAMAGED_ON_OPEN.items():
            select.select_option(label=next(t for t in labels if t.startswith(f"{name} — ")))
            wait_text(page, ".run-status", name)
            wait_text(page, ".run-alert", pattern)
            shot(page, f"13-{name}")
        select.select_option(label=next(t for t in labels if t.startswith("good — ")))
        wait_text(page, ".run-status", r"good\sfinished")
        page.wait_for_selector(".curves .bk-Canvas", timeout=60_000)
        assert page.locator(".curves .bk-Canvas").count() >= 3
        wait_text(page, ".map-status", r"t-SNE of Z at step 60", timeout=120)
        page.wait_for_selector(".scatter .bk-Canvas", timeout=30_000)
        time.sleep(1)
        assert coloured_pixels(page.locator(".scatter .bk-Canvas").first.screenshot()) > 300
        shot(page, "14-good-among-broken")
        copy_run(digits_run_template, tmp_path / "added-later")
        (tmp_path / "added-later").rename(root / "added-later")  # a run appears in the folder
        deadline = time.time() + 30
        while time.time() < deadline and not any(
                t.startswith("added-later — finished") for t in select.locator("option").all_inner_texts()):
            time.sleep(0.25)
        assert any(t.startswith("added-later — finished") for t in select.locator("option").all_inner_texts())
        text_of(page, ".run-status").index("good")  # the shown run stays shown
        assert not errors, errors


def coloured_pixels(png: bytes) -> int:
    """Pixels of a saturated colour (cluster points), not white, grey or the pale highlight of the selected map."""
    import io

    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((a.max(axis=2) - a.min(axis=2)) > 80).sum())


def test_tuning_tab_draws_a_map_per_value_and_saves_a_mark(tmp_path, browser):
    """The β_Aug tuning tab inside the whole page: one t-SNE map per value, side by side, each with its points
    drawn (a FlexBox of plots once drew a single empty box here), and a person's mark saved to the session file."""
    from core.tuning import TuningSession

    root = tmp_path / "runs"
    base = TrainConfig(dataset="digits", steps=30, snapshot_every=30, log_every=10, eval_every=30, probe_size=300,
                       batch_size=32, progress=False)
    session = TuningSession.create(root / "tune", base, [1, 2, 3], stop_at_overlap=False, parallel=3)
    session.run(progress=False)
    with explorer_page(browser, root) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.get_by_text("β_Aug tuning").first.click()
        wait_text(page, ".session-status", r"finished · scratch · values 1, 2, 3")
        deadline = time.time() + 180
        while time.time() < deadline and page.locator(".session-map .bk-Canvas").count() < 3:
            time.sleep(0.5)
        maps = page.locator(".session-map .bk-Canvas")
        assert maps.count() == 3, f"{maps.count()} of 3 maps drawn"
        time.sleep(2)  # let the last one paint
        shot(page, "11-tuning-session", docs="tuning")
        boxes = [maps.nth(i).bounding_box() for i in range(3)]
        assert all(b["width"] >= 200 and b["height"] >= 200 for b in boxes), boxes
        assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"], "maps overlap instead of standing side by side"
        for i in range(3):
            assert coloured_pixels(maps.nth(i).screenshot()) > 300, f"map {i + 1} has no points drawn"
        page.locator(".mark-overlap button").click()
        deadline = time.time() + 30
        while time.time() < deadline and "beta-1" not in TuningSession(root / "tune").data["marks"]:
            time.sleep(0.25)
        assert TuningSession(root / "tune").data["marks"]["beta-1"]["verdict"] == "overlap"
        wait_text(page, ".session-status", r"by person")
        assert not errors, errors


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (as another machine would reach it), or None."""
    import ipaddress

    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    for addr in out:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            continue
        if ip.version == 4 and not ip.is_loopback:
            return addr
    return None


@contextlib.contextmanager
def python_m_explorer(root, ip, env, *extra):
    """`python -m explorer --no-show --runs root` on a free port, reachable at ip; yields the port."""
    port = free_port()
    log = open(root.parent / f"explorer-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "explorer", "--no-show", "--runs", str(root), "--port", str(port),
                             *extra], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with socket.create_connection((ip, port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError(f"python -m explorer did not listen on {ip}:{port}: "
                                         f"{(root.parent / f'explorer-{port}.log').read_text()}")
                time.sleep(0.3)
        yield port
    finally:
        stop(proc)
        log.close()


def test_other_machines_get_the_page_only_with_allow_remote_and_the_password(tmp_path, browser, digits_run_template):
    """Opened through this machine's non-loopback address (as another machine would): bound to 0.0.0.0 without
    --allow-remote the page refuses; --allow-remote without a password does not start; with DCE_PASSWORD a login
    page comes first, a wrong password is refused and the right one shows the explorer."""
    ip = non_loopback_address()
    if ip is None:
        pytest.skip("this machine has no non-loopback address (hostname -I)")
    root = tmp_path / "runs"
    copy_run(digits_run_template, root / "good")
    env = {k: v for k, v in os.environ.items() if k != "DCE_PASSWORD"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    page = browser.new_page()
    try:
        with python_m_explorer(root, ip, env, "--address", "0.0.0.0") as port:  # bound to all, not opened to all
            page.goto(f"http://{ip}:{port}/")
            wait_text(page, ".remote-refusal", rf"only serves this machine \(your address: {re.escape(ip)}\)")
            assert page.locator(".run-select").count() == 0
            shot(page, "15-remote-refused")

        done = subprocess.run([sys.executable, "-m", "explorer", "--no-show", "--runs", str(root), "--allow-remote"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        assert done.stderr.strip() == ("error: --allow-remote needs a password: set DCE_PASSWORD or pass "
                                       "--password-file FILE (8 characters or more)")

        password = "correct-horse-battery"
        with python_m_explorer(root, ip, {**env, "DCE_PASSWORD": password}, "--allow-remote") as port:
            page.goto(f"http://{ip}:{port}/")
            page.wait_for_selector("input[name=password]", timeout=60_000)  # the login page, not the explorer
            assert page.locator(".run-select").count() == 0
            shot(page, "16-login")
            page.fill("input[name=username]", "someone")
            page.fill("input[name=password]", "wrong-password")
            page.click("button[type=submit]")
            page.wait_for_selector("text=Invalid username or password", timeout=30_000)
            assert page.locator(".run-select").count() == 0
            shot(page, "17-wrong-password")
            page.fill("input[name=username]", "someone")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            wait_text(page, ".run-status", r"good\sfinished", timeout=90)
            page.wait_for_selector(".curves .bk-Canvas", timeout=60_000)
            shot(page, "18-logged-in")
    finally:
        page.close()
        browser.clear_cookies()


def test_compare_tab_overlays_three_runs_with_the_set_rule_and_sorts_its_table(tmp_path, browser,
                                                                               digits_run_template):
    """The Compare tab: the table of three runs sorts by a clicked column title; ticking the third run draws each
    metric's chart with a line per run and c's β_Aug change as a dashed rule (look at 12-compare.png)."""
    from test_compare import add_set_record, edit_config, rewrite_metrics, set_created, with_beta

    root = tmp_path / "runs"
    created = json.loads((digits_run_template / "config.json").read_text())["created"]
    for i, name in enumerate("abc"):
        copy_run(digits_run_template, root / name)
        set_created(root / name, created + i)
    def scaled(recs, factor):  # another run's curves: every loss and score scaled, so that the lines part
        keys = ("wasserstein", "w_raw", "mi_loss", "aug_loss", "adv_loss", "acc", "nmi", "ari", "mean_max_prob",
                "size_entropy")
        return [{k: v * factor if k in keys and isinstance(v, float) else v for k, v in r.items()} for r in recs]

    edit_config(root / "b", beta_aug=3.0, seed=1)
    rewrite_metrics(root / "b", lambda recs: scaled(with_beta(recs, 3.0), 0.8))
    edit_config(root / "c", lr=5e-4)
    rewrite_metrics(root / "c", lambda recs: scaled(add_set_record(recs, 30, 4.0, 2.0), 1.2))
    with explorer_page(browser, root) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        wait_text(page, ".run-status", r"finished · step 60")
        names = ".compare-table .tabulator-row .tabulator-cell[tabulator-field='name']"
        deadline = time.time() + 90
        while time.time() < deadline and page.locator(names).count() < 3:
            page.get_by_text("Compare", exact=True).first.click()  # again, should the first click come too early
            time.sleep(1)
        if page.locator(names).count() < 3:
            shot(page, "12-compare-failed")
        assert [page.locator(names).nth(i).inner_text() for i in range(3)] == ["c", "b", "a"]  # newest first
        # sort by name: a click on its title
        page.locator(".compare-table .tabulator-col[tabulator-field='name'] .tabulator-col-title").first.click()
        deadline = time.time() + 10
        while time.time() < deadline and page.locator(names).first.inner_text() != "a":
            time.sleep(0.25)
        assert [page.locator(names).nth(i).inner_text() for i in range(3)] == ["a", "b", "c"]
        # the newest two are ticked; tick a too
        page.locator(".compare-table .tabulator-row").first.locator("input[type='checkbox']").click()
        wait_text(page, ".compare-diff-note", r"3 setting\(s\) differ between the 3 chosen runs")
        diffs = text_of(page, ".compare-diffs")
        assert "beta_aug" in diffs and "seed" in diffs and "lr" in diffs
        wait_text(page, ".compare-legend", r"c.*b.*a.*dashed: β_Aug changed")  # the charts are rebuilt for three
        charts = page.locator(".compare-charts .bk-Canvas")
        deadline = time.time() + 60
        while time.time() < deadline and charts.count() < 10:
            time.sleep(0.5)
        # W, W raw, MI, Aug KL, adversarial, ACC, NMI, ARI, mean max probability, cluster-size entropy
        assert charts.count() == 10, f"{charts.count()} charts"
        time.sleep(4)  # let them paint
        page.locator(".compare-charts").first.scroll_into_view_if_needed()
        shot(page, "12-compare", docs="compare")
        charts.first.screenshot(path=str(ARTIFACTS / "12-compare-w-chart.png"))
        assert coloured_pixels(charts.first.screenshot()) > 300
        assert not errors, errors
