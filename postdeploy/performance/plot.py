"""The two arms' latency distributions side by side, as a small SVG for the report.

One horizontal box per arm on a shared axis: whiskers from p5 to p99, the box from p25 to
p75, a line at the median and a tick at the p95, with the figures written out. Plain SVG text
(no plotting library): Allure shows it inline as an image attachment.
"""

from __future__ import annotations

from html import escape

from postdeploy.performance.judge import ArmSamples

WIDTH, ROW, MARGIN, LABEL = 640, 56, 16, 96
QUANTILES = (0.05, 0.25, 0.50, 0.75, 0.95, 0.99)
COLOURS = {"baseline": "#4a78b5", "canary": "#d0542b"}


def _box(y: float, q: dict[float, float], scale: float, colour: str) -> list[str]:
    def x(value: float) -> float:
        return LABEL + value * scale

    mid = y + ROW / 2
    return [
        f'<line x1="{x(q[0.05]):.1f}" y1="{mid}" x2="{x(q[0.99]):.1f}" y2="{mid}" '
        f'stroke="{colour}"/>',
        f'<rect x="{x(q[0.25]):.1f}" y="{y + 12}" width="{max(x(q[0.75]) - x(q[0.25]), 1):.1f}" '
        f'height="{ROW - 24}" fill="{colour}" fill-opacity="0.25" stroke="{colour}"/>',
        f'<line x1="{x(q[0.50]):.1f}" y1="{y + 12}" x2="{x(q[0.50]):.1f}" y2="{y + ROW - 12}" '
        f'stroke="{colour}" stroke-width="3"/>',
        f'<line x1="{x(q[0.95]):.1f}" y1="{y + 8}" x2="{x(q[0.95]):.1f}" y2="{y + ROW - 8}" '
        f'stroke="{colour}" stroke-dasharray="3 2"/>',
    ]


def distributions_svg(title: str, baseline: ArmSamples, canary: ArmSamples) -> str:
    """Box plots of both arms' latencies (ms) on one axis, with median/p95/p99 figures."""
    import numpy as np

    arms = {"baseline": baseline, "canary": canary}
    quantiles = {
        name: dict(zip(QUANTILES, np.quantile(arm.latencies_ms, QUANTILES), strict=True))
        for name, arm in arms.items()
        if arm.latencies_ms
    }
    top = max((q[0.99] for q in quantiles.values()), default=1.0) or 1.0
    scale = (WIDTH - LABEL - MARGIN) / top
    height = MARGIN * 2 + 20 + ROW * len(arms) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{MARGIN}" y="{MARGIN + 4}" font-weight="bold">{escape(title)}</text>',
    ]
    for row, (name, arm) in enumerate(arms.items()):
        y = MARGIN + 20 + row * ROW
        parts.append(f'<text x="{MARGIN}" y="{y + ROW / 2 + 4}">{name}</text>')
        q = quantiles.get(name)
        if q is None:
            parts.append(f'<text x="{LABEL}" y="{y + ROW / 2 + 4}">no samples</text>')
            continue
        parts += _box(y, q, scale, COLOURS[name])
        parts.append(
            f'<text x="{LABEL}" y="{y + ROW - 1}" fill="#555">n {len(arm.latencies_ms)}, '
            f"median {q[0.50]:.1f} ms, p95 {q[0.95]:.1f} ms, p99 {q[0.99]:.1f} ms, "
            f"errors {arm.errors}/{arm.requests}</text>"
        )
    axis_y = MARGIN + 20 + ROW * len(arms) + 14
    parts.append(f'<text x="{LABEL}" y="{axis_y}" fill="#555">0 ms</text>')
    parts.append(
        f'<text x="{WIDTH - MARGIN}" y="{axis_y}" fill="#555" text-anchor="end">{top:.1f} ms '
        "(box p25-p75, thick line median, dashed p95, whiskers p5-p99)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
