"""A line chart as a PNG with Pillow alone (the benchmarks need no plotting library): one line per series,
axes with ticks, a legend."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 10 ** -len(str(int(1 / raw)))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = (lo // step) * step
    return [first + i * step for i in range(n + 3) if lo <= first + i * step <= hi + 1e-9]


def line_chart(series: dict[str, tuple[list[float], list[float]]], path: str | Path, *, title: str = "",
               xlabel: str = "", ylabel: str = "", y_range: tuple[float, float] | None = None,
               hlines: dict[str, float] | None = None, size: tuple[int, int] = (900, 540)) -> Path:
    w, h = size
    left, right, top, bottom = 70, 200, 40, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    xs = [x for sx, _ in series.values() for x in sx] or [0, 1]
    ys = [y for _, sy in series.values() for y in sy if y is not None] or [0, 1]
    x0, x1 = 0.0, max(xs) or 1.0
    y0, y1 = y_range or (min(ys), max(ys))
    if y1 <= y0:
        y1 = y0 + 1

    def px(x, y):
        return (left + (x - x0) / (x1 - x0) * (w - left - right), h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))

    d.rectangle([left, top, w - right, h - bottom], outline="black")
    for t in _ticks(x0, x1):
        X, _ = px(t, y0)
        d.line([X, h - bottom, X, h - bottom + 5], fill="black")
        d.text((X - 10, h - bottom + 8), f"{t:g}", fill="black")
    for t in _ticks(y0, y1):
        _, Y = px(x0, t)
        d.line([left - 5, Y, left, Y], fill="black")
        d.line([left, Y, w - right, Y], fill="#eeeeee")
        d.text((8, Y - 6), f"{t:.2f}", fill="black")
    for i, (name, value) in enumerate((hlines or {}).items()):
        _, Y = px(x0, value)
        for X in range(left, w - right, 12):
            d.line([X, Y, X + 6, Y], fill="#888888")
        d.text((w - right + 8, h - bottom - 16 * (i + 1)), f"- - {name} {value:.3g}", fill="#555555")
    for i, (name, (sx, sy)) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = [px(x, y) for x, y in zip(sx, sy) if y is not None]
        if len(points) > 1:
            d.line(points, fill=colour, width=2)
        for X, Y in points:
            d.ellipse([X - 2, Y - 2, X + 2, Y + 2], fill=colour)
        d.line([w - right + 8, top + 8 + 16 * i, w - right + 28, top + 8 + 16 * i], fill=colour, width=3)
        d.text((w - right + 32, top + 2 + 16 * i), name, fill="black")
    d.text((left, 12), title, fill="black")
    d.text(((w - right + left) // 2 - 40, h - 22), xlabel, fill="black")
    d.text((8, top - 28), ylabel, fill="black")
    path = Path(path)
    img.save(path)
    return path
