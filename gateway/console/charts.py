"""Small inline SVG charts for the console: stacked bars per day, and plain bars per category.

Hand-written rather than a charting library: the console ships no JavaScript bundles and uses no
CDN, and two chart shapes take less code than vendoring a library. Every chart also comes with a
data table (for screen readers and for copying numbers into a report).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from html import escape

from gateway.console.service import EntrySummary

# Colour-blind-safe palette (Okabe-Ito), dark enough for 3:1 contrast against white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")


@dataclass(frozen=True)
class Series:
    """Counts per (day, category), with the categories in a fixed order."""

    days: tuple[date, ...]
    categories: tuple[str, ...]
    counts: Mapping[tuple[date, str], int]

    def total(self, day: date) -> int:
        return sum(self.counts.get((day, c), 0) for c in self.categories)


def _series(pairs: Iterable[tuple[date, str]]) -> Series:
    counts: Counter[tuple[date, str]] = Counter(pairs)
    days = tuple(sorted({day for day, _ in counts}))
    totals: Counter[str] = Counter()
    for (_, category), n in counts.items():
        totals[category] += n
    categories = tuple(c for c, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))
    return Series(days=days, categories=categories, counts=dict(counts))


def queries_by_partner(rows: Iterable[EntrySummary], own_force: str) -> Series:
    """Queries per day by the partner force on the other side: the force a disclosure went to,
    or for our own analysts' searches the forces they asked (from the entry's receipts)."""
    pairs: list[tuple[date, str]] = []
    for row in rows:
        day = row.time.date()
        if row.kind == "disclose" and row.recipient_force:
            pairs.append((day, row.recipient_force))
        elif row.kind == "search_completed":
            pairs.append((day, row.recipient_force or "several"))
        elif row.kind == "consult":
            pairs.append((day, f"{own_force} (own)"))
    return _series(pairs)


def queries_by_purpose(rows: Iterable[EntrySummary]) -> Series:
    return _series(
        (row.time.date(), row.purpose or "none")
        for row in rows
        if row.kind in ("consult", "disclose", "search_completed")
    )


def disclosures_by_decision(rows: Iterable[EntrySummary]) -> dict[str, int]:
    """Records disclosed per outcome, from decision summaries like "redacted:3,pointer:1"."""
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.kind != "disclose":
            continue
        parts = [p for p in (row.decision or "").split(",") if p.strip()]
        if not parts:
            totals["none"] += 1
        for part in parts:
            outcome, _, count = part.partition(":")
            totals[outcome.strip()] += int(count) if count.strip().isdigit() else 1
    return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))


def _colour(position: int) -> str:
    return PALETTE[position % len(PALETTE)]


def stacked_bars_svg(series: Series, *, title: str, width: int = 640, height: int = 220) -> str:
    if not series.days:
        return f'<p class="empty">No data for “{escape(title)}” in this filter.</p>'
    left, bottom, top = 36, 28, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(series.total(day) for day in series.days) or 1
    slot = plot_w / len(series.days)
    bar_w = max(2.0, min(28.0, slot * 0.7))
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#444"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="axis">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="axis">0</text>',
    ]
    for i, day in enumerate(series.days):
        x = left + i * slot + (slot - bar_w) / 2
        y: float = top + plot_h
        for position, category in enumerate(series.categories):
            n = series.counts.get((day, category), 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{_colour(position)}"><title>{day.isoformat()} · {escape(category)}: '
                f"{n}</title></rect>"
            )
        if len(series.days) <= 14 or i % max(1, len(series.days) // 10) == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" text-anchor="middle" '
                f'class="axis">{day:%d %b}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch swatch-{p % len(PALETTE)}"></span>{escape(c)}</li>'
        for p, c in enumerate(series.categories)
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'


def bars_svg(values: Mapping[str, int], *, title: str, width: int = 640) -> str:
    if not values:
        return f'<p class="empty">No data for “{escape(title)}” in this filter.</p>'
    row_h, label_w = 26, 110
    height = row_h * len(values) + 10
    peak: float = max(values.values()) or 1
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, n) in enumerate(values.items()):
        y = 5 + i * row_h
        w = (width - label_w - 60) * n / peak
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end" class="axis">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{_colour(i)}"><title>{escape(label)}: {n}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" class="axis">{n}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
