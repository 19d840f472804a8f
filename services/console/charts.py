"""The board's charts, drawn on the server as SVG by pygal (no script: `js=[]`, so a chart asks
nothing of the internet and works where scripts are off): progress per unit, the burn-down of
open items over the campaign, and overdue items by unit."""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pygal
from pygal.style import Style

from services.console.web import to_date

FONTS = '"WenQuanYi Micro Hei", "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif'
STYLE = Style(font_family=FONTS, title_font_family=FONTS, label_font_family=FONTS,
              major_label_font_family=FONTS, value_font_family=FONTS, legend_font_family=FONTS,
              tooltip_font_family=FONTS, background="white", plot_background="white",
              colors=("#2e7d32", "#1565c0", "#c62828", "#f9a825", "#6a1b9a"),
              title_font_size=16, label_font_size=12, major_label_font_size=12,
              legend_font_size=12, value_font_size=11)
COMMON = {"js": [], "style": STYLE, "width": 760, "height": 360, "print_values": True,
          "print_zeroes": False,
          "legend_at_bottom": True, "truncate_label": -1, "truncate_legend": -1,
          "no_data_text": "暂无数据"}


# pygal writes its config into an inline <script> even with `js=[]`: a chart shown as an image
# never runs it, and the page's policy forbids inline scripts, but a chart has no need of one.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)


def _svg(chart: pygal.graph.graph.Graph) -> str:
    return _SCRIPT.sub("", str(chart.render(is_unicode=True)))


def progress_chart(units: Sequence[dict[str, Any]], short: dict[str, str]) -> str:
    chart = pygal.HorizontalStackedBar(title="各单位整改进度（问题数）", **COMMON)
    chart.x_labels = [short.get(u["unit"], u["unit"]) for u in units]
    chart.add("已销号", [u.get("closed", 0) for u in units])
    chart.add("整改中（未逾期）", [max(u.get("open", 0) - u.get("overdue", 0), 0) for u in units])
    chart.add("已逾期", [u.get("overdue", 0) for u in units])
    return _svg(chart)


def overdue_chart(units: Sequence[dict[str, Any]], short: dict[str, str]) -> str:
    chart = pygal.Bar(title="各单位逾期未销号问题数", show_legend=False, **COMMON)
    chart.x_labels = [short.get(u["unit"], u["unit"]) for u in units]
    chart.add("已逾期", [u.get("overdue", 0) for u in units])
    return _svg(chart)


def open_on(items: Sequence[dict[str, Any]], day: date) -> int:
    """Items open at the end of `day`: registered by then, not closed or withdrawn by then."""
    count = 0
    for item in items:
        registered = to_date(item.get("registered_at"))
        if registered is None or registered > day:
            continue
        ended = [d for d in (to_date(item.get("closed_at")), to_date(item.get("withdrawn_at")))
                 if d is not None]
        if not ended or min(ended) > day:
            count += 1
    return count


def burndown_days(items: Sequence[dict[str, Any]], start: date, end: date,
                  points: int = 40) -> list[date]:
    first = min([start, *(d for i in items if (d := to_date(i.get("registered_at"))))])
    span = max((end - first).days, 1)
    step = max(1, -(-span // points))
    days = [first + timedelta(days=n) for n in range(0, span, step)]
    return [*days, end]


def burndown_chart(items: Sequence[dict[str, Any]], start: date, end: date) -> str:
    days = burndown_days(items, start, end)
    chart = pygal.Line(title="未销号问题数变化（燃尽图）", show_legend=False, x_label_rotation=30,
                       show_minor_x_labels=False, fill=True, **{**COMMON, "print_values": False})
    chart.x_labels = [f"{d.month}月{d.day}日" if d.year == end.year else f"{d.year}年{d.month}月{d.day}日"
                      for d in days]
    chart.x_labels_major = chart.x_labels[:: max(1, len(days) // 8)]
    chart.add("未销号", [open_on(items, d) for d in days])
    return _svg(chart)
