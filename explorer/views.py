"""HoloViews/Panel drawings of the view data (`explorer.viewdata`). Each function draws; none reads a run."""

from __future__ import annotations

import html

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh options without notebook output)
import numpy as np
import pandas as pd

from . import images

hv.Store.set_current_backend("bokeh")

SCATTER_VDIMS = ["y", "cluster", "label", "confidence", "row"]
# The image comes from the row number through a formatter holding the run's thumbnails, so that each new map sends
# positions and colours only, not the thumbnails again (5,000 of them: about 1 MB for digits, 3 MB for 28×28 images).
TOOLTIP = ('<div class="tip"><img src="@row{thumb}" width="56" height="56" style="image-rendering: pixelated">'
           '<div>@cluster · p=@confidence{0.00} · @label</div></div>')
TOOLTIP_TEXT = '<div class="tip">@cluster · p=@confidence{0.00} · @label (#@row)</div>'
MAX_THUMBS = 10_000  # above this many points, tooltips carry text only (thumbnails would be tens of MB)


def palette(n: int) -> list[str]:
    """Distinct colours for n categories (Category10/20, then glasbey)."""
    import colorcet
    from bokeh.palettes import Category10_10, Category20_20

    if n <= 10:
        return list(Category10_10)
    if n <= 20:
        return list(Category20_20)
    return list(colorcet.glasbey[:n]) if n <= len(colorcet.glasbey) else [colorcet.glasbey[i % 256] for i in range(n)]


def category_cmap(names: list[str]) -> dict[str, str]:
    """A fixed colour per category, so a cluster keeps its colour when another one empties."""
    colours = palette(len(names))
    return {name: colours[i] for i, name in enumerate(names)}


def thumbnail_formatter(thumbs: list[str]):
    """A tooltip formatter that turns a probe row number into its thumbnail (a data URI), sent to the browser once
    with the plot instead of as a column of every map update."""
    from bokeh.models import ColumnDataSource, CustomJSHover

    source = ColumnDataSource({"thumb": list(thumbs)}, name="thumbnails")
    return CustomJSHover(args={"thumbs": source}, code="return thumbs.data.thumb[value] || ''")


def scatter_maps(pipe: hv.streams.Pipe, clusters: list[str], labels: list[str], *, size: int = 4,
                 height: int = 420, thumbs: list[str] | None = None) -> dict[str, hv.DynamicMap]:
    """One DynamicMap per colouring (cluster, label: categorical; confidence: continuous) on the same data pipe.

    A Bokeh colour mapper cannot switch between categorical and continuous, so the view swaps maps instead.
    (Show these in panes with `linked_axes=False`: HoloViews otherwise links every axis named x across a page,
    and `shared_axes=False` would stop the framewise rescaling.) `thumbs`: the probe's thumbnails by row, shown
    in the tooltip (without them the tooltip is text)."""
    if thumbs is not None:  # HoloViews writes @row as @{row}; Bokeh looks the formatter up as written
        fmt = thumbnail_formatter(thumbs)
        hover = dict(hover_tooltips=TOOLTIP, hover_formatters={"@row": fmt, "@{row}": fmt})
    else:
        hover = dict(hover_tooltips=TOOLTIP_TEXT)
    common = dict(tools=["box_select", "lasso_select", "tap"], active_tools=["box_select", "wheel_zoom"],
                  **hover, size=size, nonselection_alpha=0.15,
                  framewise=True, responsive=True, height=height, xaxis=None, yaxis=None,
                  backend_opts={"plot.output_backend": "webgl"})

    def element(data):
        scatter = hv.Scatter(data, "x", SCATTER_VDIMS)
        chosen = getattr(data, "attrs", {}).get("selected")  # rows selected from elsewhere (a confusion cell)
        return scatter.opts(selected=[int(r) for r in chosen]) if chosen is not None else scatter

    return {
        "cluster": hv.DynamicMap(element, streams=[pipe]).opts(
            hv.opts.Scatter(color="cluster", cmap=category_cmap(clusters), show_legend=False, **common)),
        "label": hv.DynamicMap(element, streams=[pipe]).opts(
            hv.opts.Scatter(color="label", cmap=category_cmap(labels or ["unknown"]), show_legend=False, **common)),
        "confidence": hv.DynamicMap(element, streams=[pipe]).opts(
            hv.opts.Scatter(color="confidence", cmap="viridis", colorbar=True, clim=(0, 1), **common)),
    }


FEW_POINTS = 5  # a curve with this many points or fewer is drawn with a marker at each point


def legend_html(names: list[str], counts: list[int]) -> str:
    """The map's legend, outside the plot: every category in order with its colour (the colours `category_cmap`
    gives the map) and how many probe images it holds; an empty one says so. Each non-empty entry carries its
    index as `data-pick` (a click selects its images: explorer.clickable)."""
    colours = category_cmap(list(names))
    rows = []
    for i, (name, n) in enumerate(zip(names, counts)):
        pick = f' data-pick="{i}" title="select its {n:,} images"' if n else ""
        swatch = (f'<span style="display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:5px;'
                  f'background:{colours[name]};opacity:{1 if n else 0.35}"></span>')
        count = f"{n:,}" if n else "empty"
        rows.append(f'<div class="legend-row"{pick} style="white-space:nowrap;font-size:12px;line-height:18px;'
                    f'color:{"#222" if n else "#999"}">{swatch}{html.escape(name)} '
                    f'<span style="color:#888">({count})</span></div>')
    return f'<div class="map-legend-list" style="max-height:420px;overflow-y:auto">{"".join(rows)}</div>'


def curves_map(pipe: hv.streams.Pipe, title: str, xlabel: str, height: int = 210,
               rules: hv.streams.Pipe | None = None):
    """Lines of one curve group (long table x, value, metric), one line per metric; with `rules` (a table x,
    setting, value), a dashed vertical rule where a live setting such as β_Aug was changed."""

    def element(data):
        return hv.NdOverlay({m: hv.Curve(d, "x", "value", label=m) for m, d in data.groupby("metric", sort=False)},
                            kdims="metric")

    def marker_element(data):  # a marker at each point of a line that has only a few (one point draws no line)
        return hv.NdOverlay({m: hv.Scatter(d if len(d) <= FEW_POINTS else d.iloc[:0], "x", "value", label=m)
                             for m, d in data.groupby("metric", sort=False)}, kdims="metric")

    curves = hv.DynamicMap(element, streams=[pipe]).opts(
        hv.opts.Curve(framewise=True, tools=["hover"], responsive=True, height=height, xlabel=xlabel, ylabel="",
                      line_width=1.5),
        hv.opts.NdOverlay(title=title, legend_position="right", framewise=True, responsive=True, height=height))
    markers = hv.DynamicMap(marker_element, streams=[pipe]).opts(hv.opts.Scatter(size=6, framewise=True))
    curves = (curves * markers).opts(hv.opts.Overlay(title=title, responsive=True, height=height,
                                                     legend_position="right"))
    if rules is None:
        return curves

    def rule_element(data):
        return hv.VLines(data, "x", ["setting", "value"])

    lines = hv.DynamicMap(rule_element, streams=[rules]).opts(
        hv.opts.VLines(color="#777", line_dash="dashed", line_width=1, tools=["hover"]))
    return (curves * lines).opts(hv.opts.Overlay(title=title, responsive=True, height=height))


DARK_CELL = 0.5  # cells above this share of the largest count are dark in the Blues map: their text is white


def confusion_title(n_images: int) -> str:
    return f"Confusion matrix of the {n_images:,}-image probe"


def confusion_heatmap(matrix: np.ndarray, class_names: list[str], cluster_names: list[str],
                      height: int = 340, on_tap=None) -> hv.Overlay:
    """Rows: true classes; columns: clusters in matched order (a perfect clustering is diagonal). Computed on the
    run's probe images, which the title says; each count is written in white on dark cells, black on light.
    `on_tap(cluster, class)` is called with a clicked cell's names."""
    rows = [(cluster_names[j], class_names[i], int(matrix[i, j]))
            for i in range(matrix.shape[0]) for j in range(matrix.shape[1])]
    hm = hv.HeatMap(rows, kdims=["cluster", "class"], vdims=["count"])
    if on_tap is not None:
        _on_cell_tap(hm, on_tap)
    top = max(1, int(matrix.max()) if matrix.size else 1)
    dark = [r for r in rows if r[2] > DARK_CELL * top]
    light = [r for r in rows if r[2] <= DARK_CELL * top]
    labels = (hv.Labels(light, kdims=["cluster", "class"], vdims=["count"]).opts(text_color="black")
              * hv.Labels(dark, kdims=["cluster", "class"], vdims=["count"]).opts(text_color="white"))
    return (hm * labels).opts(
        hv.opts.HeatMap(cmap="Blues", colorbar=False, tools=["hover", "tap"], responsive=True, height=height,
                        xrotation=45, invert_yaxis=True, title=confusion_title(int(matrix.sum())),
                        xlabel="cluster (matched to the classes)",
                        clim=(0, top)),
        hv.opts.Labels(text_font_size="8pt"))


def confusion_map(pipe: hv.streams.Pipe, height: int = 340, on_tap=None) -> hv.DynamicMap:
    """`confusion_heatmap` on a data pipe that carries (matrix, class names, cluster names): a new snapshot's
    matrix updates the plot on the page in place. A new plot object per snapshot made the browser build the figure
    again at every map's arrival (about 0.9 s of its CPU each beside a watched run; docs/benchmarks.md)."""
    drawn = {}  # the overlay of the last data sent, built once for its three layers

    def overlay(data):
        if drawn.get("data") is not data:
            drawn.update(data=data, overlay=confusion_heatmap(*data, height=height))
        return drawn["overlay"]

    def layer(i):  # one DynamicMap per layer: a tap stream reaches a plot only through an element's own map
        return hv.DynamicMap(lambda data: overlay(data).get(i), streams=[pipe])

    cells, light, dark = layer(0), layer(1), layer(2)
    if on_tap is not None:
        _on_cell_tap(cells, on_tap)
    return cells * light * dark


def _on_cell_tap(source, on_tap) -> None:
    hv.streams.Tap(source=source, x=None, y=None).add_subscriber(
        lambda x=None, y=None: on_tap(x, y) if x is not None and y is not None else None)


def cluster_size_bars(frame: pd.DataFrame, height: int = 300) -> hv.Bars:
    return hv.Bars(frame, "cluster", "size").opts(responsive=True, height=height, tools=["hover"],
                                                  title="Cluster sizes (no labels in this run)", color="#4c72b0")


def gallery_html(rows: list[tuple[str, np.ndarray]], scale: int = 2, picks: list | None = None) -> str:
    """One line per cluster: its name and a strip of its most confident images (the paper's Fig. 4); a cluster
    with no images says "empty". With `picks` (one key per row), a non-empty row carries its key as `data-pick`
    (a click selects the cluster's images)."""
    parts = ['<div class="gallery">']
    for i, (name, imgs) in enumerate(rows):
        pick = f' data-pick="{picks[i]}" title="select this cluster\'s images"' if picks and len(imgs) else ""
        if len(imgs):
            strip = images.tile(imgs, ncols=len(imgs), pad=1)
            uri = images.data_uri(strip[None] if strip.ndim == 2 else strip.transpose(2, 0, 1))
            shown = (f'<img src="{uri}" style="width:{strip.shape[1] * scale}px;max-width:100%;height:auto;'
                     f'image-rendering:pixelated">')
        else:
            shown = '<span class="gallery-empty" style="color:#888;font-style:italic">empty</span>'
        parts.append(f'<div class="gallery-row"{pick} style="display:flex;align-items:center;gap:8px;margin:2px 0">'
                     f'<span style="min-width:150px;font-family:monospace;font-size:12px;white-space:nowrap">'
                     f'{html.escape(name)}</span>{shown}</div>')
    parts.append("</div>")
    return "".join(parts)


def selection_html(frame: pd.DataFrame, probe_images: np.ndarray, total: int, size: int = 56,
                   caption: bool = True, counts: str = "", first: int = 0) -> str:
    """A grid of the selected images with their cluster, confidence and label; `counts` (the whole selection's
    counts per cluster and per label) goes at the top; `first` is the place of the frame's first image in the
    whole selection (a page past the first). Each image carries its probe row as `data-pick` (a click shows its
    nearest images)."""
    if total == 0 and caption:
        return '<div class="selection-empty">Select points in the map (box or lasso) to see their images.</div>'
    cells = []
    for r in frame.itertuples():
        uri = images.data_uri(probe_images[r.row])
        caption = f"{r.cluster} · {r.confidence:.2f}" + (f"<br>{html.escape(str(r.label))}" if r.label else "")
        cells.append(f'<div class="sel-cell" data-pick="{r.row}" title="a click shows the images closest to this one" style="text-align:center;font-size:10px;font-family:monospace">'
                     f'<img src="{uri}" width="{size}" height="{size}" style="image-rendering:pixelated"><br>'
                     f'{caption}</div>')
    if total > len(frame):
        shown = f"images {first + 1:,}–{first + len(frame):,} of {total:,}" if len(frame) else f"none of {total:,}"
    else:
        shown = f"{total:,}"
    what = "selected image" if total == 1 else "selected images, most confident first"
    head = f'<div class="selection-head" style="margin-bottom:4px">{shown} {what}</div>' if caption else ""
    if counts:
        head += f'<div class="selection-counts" style="margin-bottom:4px;font-size:11px;color:#555">{counts}</div>'
    return (f'<div class="selection">{head}<div style="display:grid;'
            f'grid-template-columns:repeat(auto-fill,minmax({size + 8}px,1fr));gap:4px">{"".join(cells)}</div></div>')
