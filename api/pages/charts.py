"""Bar charts as inline SVG, drawn on the server: data in, an SVG string out. No script, no
style attribute that CSP would refuse: colours come from the `chart` classes in ringback.css.

One `<rect class="bar">` per value (a missing value draws an empty bar and the label "-"),
labels and the title escaped. Bars are scaled to the largest value (or `max_value`)."""

from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

Value = float | int | None

WIDTH = 520
HEIGHT = 220
_TOP, _BOTTOM, _LEFT, _RIGHT = 36, 40, 8, 8


def _plain(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def bar_chart(bars: Sequence[tuple[str, Value]], title: str, *,
              max_value: float | None = None,
              value_format: Callable[[float | int], str] = _plain,
              width: int = WIDTH, height: int = HEIGHT) -> str:
    """A vertical bar chart of `(label, value)` pairs titled `title`."""
    plot_height = height - _TOP - _BOTTOM
    top = max([max_value or 0.0, *(float(v) for _, v in bars if v is not None)])
    slot = (width - _LEFT - _RIGHT) / max(1, len(bars))
    bar_width = max(1.0, slot * 0.7)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label={quoteattr(title)}>',
        f"<title>{escape(title)}</title>",
        f'<text class="title" x="{_LEFT}" y="16">{escape(title)}</text>',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_height}" '
        f'x2="{width - _RIGHT}" y2="{_TOP + plot_height}"/>',
    ]
    for index, (label, value) in enumerate(bars):
        size = 0.0 if value is None or top <= 0 else max(0.0, float(value)) / top * plot_height
        x = _LEFT + index * slot + (slot - bar_width) / 2
        y = _TOP + plot_height - size
        centre = x + bar_width / 2
        shown = "-" if value is None else value_format(value)
        parts += [
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" '
            f'height="{size:.1f}"><title>{escape(f"{label}: {shown}")}</title></rect>',
            f'<text class="value" x="{centre:.1f}" y="{y - 4:.1f}" '
            f'text-anchor="middle">{escape(shown)}</text>',
            f'<text class="label" x="{centre:.1f}" y="{height - _BOTTOM + 16}" '
            f'text-anchor="middle">{escape(label)}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)
