"""How the map view copes with many points: time until a scatter of N points is drawn in headless Chromium, and
the round trip of a box selection (browser → server → selection grid), for 5,000 and 70,000 points in the same run.
The figure is the 70k/5k ratio (WebGL rendering; tooltips carry images up to 10,000 points, text above).

    python benchmarks/scatter_render.py [--points 5000 70000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

APP = '''
import sys, numpy as np, pandas as pd, holoviews as hv, panel as pn
sys.path.insert(0, {repo!r})
from explorer import views, images
pn.extension(); hv.extension("bokeh")
n = int(sys.argv[1]); rng = np.random.default_rng(0); k = 10
lab = rng.integers(0, k, n)
xy = rng.normal(0, 1, (n, 2)) + 6 * np.stack([np.cos(lab), np.sin(lab)], 1)
thumbs = n <= views.MAX_THUMBS
imgs = rng.integers(0, 255, (min(n, 2000), 1, 28, 28), dtype=np.uint8)
uris = images.data_uris(imgs) if thumbs else None
frame = pd.DataFrame({{"x": xy[:, 0], "y": xy[:, 1], "cluster": [f"c{{c}}" for c in lab], "label": "?",
                      "confidence": rng.random(n), "row": np.arange(n),
                      "thumb": [uris[i % len(uris)] for i in range(n)] if thumbs else ""}})
pipe = hv.streams.Pipe(data=frame)
maps = views.scatter_maps(pipe, [f"c{{c}}" for c in range(k)], ["?"], thumbs=thumbs, size=3 if n > 10000 else 4)
count = pn.pane.Markdown("selected 0", css_classes=["count"])
sel = hv.streams.Selection1D(source=maps["cluster"])
sel.add_subscriber(lambda index: setattr(count, "object", f"selected {{len(index)}}"))
pn.Column(count, pn.pane.HoloViews(maps["cluster"], css_classes=["scatter"], linked_axes=False),
          width=900).servable()
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(n: int, ctx, app_file: Path) -> tuple[float, float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", str(app_file), "--address", "127.0.0.1",
                             "--port", str(port), "--args", str(n)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        page = ctx.new_page()
        t0 = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/{app_file.stem}")
        page.wait_for_selector(".scatter .bk-Canvas", timeout=120_000)
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length && Bokeh.documents[0].is_idle",
                               timeout=120_000)
        t_render = time.perf_counter() - t0
        box = page.locator(".scatter .bk-Canvas").first.bounding_box()
        t0 = time.perf_counter()
        page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7, steps=5)
        page.mouse.up()
        count = page.locator(".count").first  # Playwright's locators pierce the shadow roots Panel uses
        while not count.evaluate("e => /selected [1-9]/.test((e.shadowRoot || e).textContent)"):
            if time.perf_counter() - t0 > 120:
                raise TimeoutError("the selection never reached the server")
            time.sleep(0.02)
        t_select = time.perf_counter() - t0
        page.close()
        return t_render, t_select
    finally:
        proc.terminate()
        proc.wait(30)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, nargs="+", default=[5000, 70000])
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="scatter-bench-"))
    app_file = tmp / "scatter_app.py"
    app_file.write_text(APP.format(repo=str(REPO)))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    results = {}
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp / "profile"), executable_path="/usr/bin/chromium",
                                                    headless=True, args=flags, viewport={"width": 1200, "height": 900})
        for n in args.points:
            results[n] = measure(n, ctx, app_file)
            print(f"{n:>7} points: drawn in {results[n][0]:.2f} s, box selection round trip {results[n][1]:.2f} s",
                  flush=True)
        ctx.close()
    shutil.rmtree(tmp, ignore_errors=True)
    if len(args.points) >= 2:
        a, b = args.points[0], args.points[-1]
        print(f"\n{b} vs {a} points: drawing {results[b][0] / results[a][0]:.2f}x, "
              f"selection {results[b][1] / results[a][1]:.2f}x the time (software WebGL, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
