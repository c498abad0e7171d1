"""The screenshots in docs/img/: one of each view of the explorer, taken from a real run in headless Chromium.

    .venv/bin/python benchmarks/screenshots.py            # trains a short digits run, then writes docs/img/*.png
    .venv/bin/python benchmarks/screenshots.py --runs runs  # uses the newest finished run of a runs folder instead

Needs /usr/bin/chromium and the `playwright` package (`make test` installs both where it can). Anyone can rerun it
after a change to the page; docs/explorer.md shows the pictures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from headless import CHROMIUM, ExplorerServer, launch_context  # noqa: E402


def train_example(root: Path, steps: int) -> Path:
    """A finished DCCS run on digits with a β_Aug change half-way (so the curves show a `set` rule)."""
    from core import TrainConfig
    from core.trainer import Trainer

    run_dir = root / "digits-example"
    trainer = Trainer(TrainConfig(dataset="digits", steps=steps, log_every=10, eval_every=max(20, steps // 10),
                                  snapshot_every=max(20, steps // 6), probe_size=1000, progress=True,
                                  run_dir=str(run_dir)))
    trainer.add_callback(lambda ev: ev["type"] == "record" and ev["step"] == steps // 2 and trainer.set_beta_aug(3.0))
    trainer.fit()
    return run_dir


def wait_for(page, selector: str, text: str | None = None, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        loc = page.locator(selector)
        if loc.count():
            content = loc.first.evaluate("e => (e.shadowRoot || e).textContent || ''")
            if text is None or text in content:
                return
        time.sleep(0.25)
    raise SystemExit(f"error: {selector} never showed {text!r}")


def shoot(page, out: Path, name: str, selector: str | None = None) -> None:
    path = out / f"{name}.png"
    if selector:
        page.locator(selector).first.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=None, help="a runs folder with a finished run (default: train one)")
    p.add_argument("--steps", type=int, default=300, help="length of the example run it trains (default 300)")
    p.add_argument("--out", default=str(REPO / "docs" / "img"))
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (apt-get install -y chromium)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="dcx-shots-"))
    root = Path(args.runs) if args.runs else scratch / "runs"
    if not args.runs:
        train_example(root, args.steps)
    server = ExplorerServer(root)
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            ctx = launch_context(pw, scratch / "profile", 1500, 1000)
            page = server.open(ctx.new_page(), timeout=90)
            wait_for(page, ".map-status", " in ")  # "t-SNE of Z at step N in 3.1 s · 1,000 images"
            page.wait_for_selector(".curves .bk-Canvas", timeout=60_000)
            time.sleep(2)
            shoot(page, out, "run-page")
            shoot(page, out, "curves", ".curves")
            # a box selection on the map, then the selection grid and the export tab
            box = page.locator(".scatter .bk-Canvas").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.55, steps=8)
            page.mouse.up()
            wait_for(page, ".selection", "selected images")
            time.sleep(1)
            shoot(page, out, "map-and-selection", ".scatter")
            shoot(page, out, "selection", ".selection")
            page.get_by_text("Confusion / sizes").first.click()
            page.wait_for_selector(".confusion .bk-Canvas", timeout=30_000)
            time.sleep(1)
            shoot(page, out, "confusion", ".confusion")
            page.get_by_text("Most confident per cluster").first.click()
            time.sleep(1)
            shoot(page, out, "gallery", ".gallery")
            page.get_by_text("Export / name").first.click()
            time.sleep(1)
            page.mouse.wheel(0, 2000)
            shoot(page, out, "export")
            ctx.close()
    finally:
        server.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
