#!/usr/bin/env python3
"""Draws charts/outboxd/dashboards/outboxd.json from a real Prometheus, as an HTML page with
the dashboard's layout (gridPos), titles, queries, legends and units, then screenshots it with
headless Chromium. It is not Grafana (which no package registry reachable here ships): each
panel's PromQL is sent to Prometheus as written (variables: namespace, job, $__rate_interval)
and plotted as lines (timeseries), a number (stat) or bars (bargauge).

  python3 docs/monitoring/render.py --prometheus http://127.0.0.1:9190 --minutes 20 --out docs/monitoring/dashboard.png
"""

import argparse
import html
import json
import re
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a", "#37872d"]
COL, ROW = 66, 32  # pixels per grid column (24) and grid row


def query(prom, path, params):
    url = f"{prom}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body["status"] != "success":
        raise SystemExit(f"{url}: {body}")
    return body["data"]["result"]


def substitute(expr, rate):
    return (expr.replace("$__rate_interval", rate).replace("$namespace", "demo").replace("$job", "outboxd"))


def legend(fmt, metric):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt or "") or json.dumps(metric)


def fmt(v, unit):
    if v is None or v != v:
        return "–"
    if unit == "percentunit":
        return f"{v * 100:.1f}%"
    if unit == "s":
        if v < 1:
            return f"{v * 1000:.0f} ms"
        if v < 120:
            return f"{v:.1f} s"
        if v < 7200:
            return f"{v / 60:.1f} min"
        return f"{v / 3600:.1f} h"
    if unit == "d":
        return f"{v:.1f} d"
    if unit == "bytes":
        return f"{v / 1048576:.0f} MiB"
    suffix = "/s" if unit == "ops" else ""
    if abs(v) >= 1000:
        return f"{v / 1000:.1f}k{suffix}"
    return f"{v:.2f}{suffix}" if v != int(v) else f"{int(v)}{suffix}"


def threshold_color(panel, v):
    """The colour of the last threshold step `v` reaches, or None when the panel has none."""
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    color = None
    for s in steps:
        if s["value"] is None or (v is not None and v >= s["value"]):
            color = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c"}.get(s["color"], s["color"])
    return color


def timeseries_svg(series, w, h, unit, t0, t1, step):
    pad_l, pad_b, pad_t = 58, 18, 6
    values = [v for _, pts in series for _, v in pts if v == v]
    lo = min([0.0] + values)
    hi = max(values) if values else 1.0
    if unit == "percentunit":
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    hi = hi if hi > lo else lo + 1
    pw, ph = w - pad_l - 8, h - pad_b - pad_t
    sx = lambda t: pad_l + (t - t0) / (t1 - t0) * pw
    sy = lambda v: pad_t + ph - (v - lo) / (hi - lo) * ph
    out = [f'<svg width="{w}" height="{h}">']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = sy(v)
        out.append(f'<line x1="{pad_l}" x2="{w - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#2c3235"/>')
        out.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" text-anchor="end">{html.escape(fmt(v, unit))}</text>')
    for i in range(5):
        t = t0 + (t1 - t0) * i / 4
        anchor = "end" if i == 4 else "middle"
        out.append(f'<text x="{sx(t):.1f}" y="{h - 3}" text-anchor="{anchor}">{time.strftime("%H:%M", time.localtime(t))}</text>')
    for i, (_, pts) in enumerate(series):
        path, pen, last = [], "M", None
        for t, v in pts:
            # A gap (no sample, e.g. filtered out by `> 0`) breaks the line, as in Grafana.
            if v != v or (last is not None and t - last > 1.5 * step):
                pen = "M"
            last = t
            if v != v:
                continue
            path.append(f"{pen}{sx(t):.1f},{sy(v):.1f}")
            pen = "L"
        c = COLORS[i % len(COLORS)]
        out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{c}" stroke-width="1.6"/>')
    out.append("</svg>")
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    dash = json.loads((REPO / "charts/outboxd/dashboards/outboxd.json").read_text())
    t1 = time.time()
    t0 = t1 - args.minutes * 60
    step = max(5, int((t1 - t0) / 240))
    rate = "1m"
    boxes = []
    height = 0
    for p in dash["panels"]:
        g = p["gridPos"]
        x, y, w, h = g["x"] * COL, g["y"] * ROW, g["w"] * COL, g["h"] * ROW
        height = max(height, y + h)
        style = f"left:{x + 4}px;top:{y + 4}px;width:{w - 8}px;height:{h - 8}px"
        if p["type"] == "row":
            boxes.append(f'<div class="row" style="{style}">{html.escape(p["title"])}</div>')
            continue
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        body = ""
        if p["type"] == "timeseries":
            series = []
            for t in p["targets"]:
                for r in query(args.prometheus, "query_range", {"query": substitute(t["expr"], rate), "start": t0, "end": t1, "step": step}):
                    pts = [(float(ts), float(v)) for ts, v in r["values"]]
                    series.append((legend(t.get("legendFormat"), r["metric"]), pts))
            series = series[:9]
            # Room for the legend: about 6.5 px per character, wrapped to the panel's width.
            legend_px = sum(len(n) + 5 for n, _ in series) * 6.5
            lines = max(1, -(-int(legend_px) // (w - 36)))
            body = timeseries_svg(series, w - 16, h - 8 - 30 - 8 - 15 * lines, unit, t0, t1, step)
            body += '<div class="legend">' + "".join(
                f'<span><i style="background:{COLORS[i % len(COLORS)]}"></i>{html.escape(n)}</span>' for i, (n, _) in enumerate(series)) + "</div>"
        elif p["type"] == "stat":
            r = query(args.prometheus, "query", {"query": substitute(p["targets"][0]["expr"], rate), "time": t1})
            v = float(r[0]["value"][1]) if r else None
            color = threshold_color(p, v) or "#73bf69"
            body = f'<div class="stat" style="color:{color}">{html.escape(fmt(v, unit))}</div>'
        elif p["type"] == "bargauge":
            rows = []
            for t in p["targets"]:
                for r in query(args.prometheus, "query", {"query": substitute(t["expr"], rate), "time": t1}):
                    rows.append((legend(t.get("legendFormat"), r["metric"]), float(r["value"][1])))
            if not p["targets"][0]["expr"].startswith("sort("):  # sort(): the query's order, as Grafana
                rows.sort(key=lambda r: -r[1])
            top = max([r[1] for r in rows] + [1e-9])
            # With thresholds, a bar has its threshold's colour (as Grafana's "basic" mode).
            bar = lambda v: f"background:{threshold_color(p, v)}" if threshold_color(p, v) else ""
            body = "".join(
                f'<div class="bar"><span>{html.escape(n)}</span><b style="width:{max(v, 0) / top * 60:.0f}%;{bar(v)}"></b><em>{html.escape(fmt(v, unit))}</em></div>'
                for n, v in rows[:8]) or '<div class="none">no data</div>'
        boxes.append(f'<div class="panel" style="{style}"><h3>{html.escape(p["title"])}</h3>{body}</div>')
    page = f"""<!doctype html><html><head><meta charset="utf-8"><style>
body{{margin:0;background:#111217;color:#ccccdc;font:12px sans-serif}}
.top{{height:40px;line-height:40px;padding-left:12px;font-size:16px;border-bottom:1px solid #2c3235}}
.top small{{color:#8e8e8e;font-size:12px;margin-left:12px}}
.grid{{position:relative;height:{height + 8}px}}
.panel{{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;overflow:hidden}}
.panel h3{{margin:6px 8px;font-size:13px;font-weight:500;color:#d8d9da}}
.row{{position:absolute;font-size:14px;font-weight:500;padding-top:6px}}
svg{{margin-left:8px}} svg text{{fill:#8e8e8e;font-size:10px}}
.legend{{margin:2px 10px;font-size:11px}} .legend span{{margin-right:12px;white-space:nowrap}}
.legend i{{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}}
.stat{{font-size:34px;font-weight:500;text-align:center;margin-top:8px}}
.bar{{display:flex;align-items:center;margin:5px 10px}} .bar span{{width:38%}} .bar b{{background:linear-gradient(90deg,#37872d,#f2495c);height:14px;margin-right:6px}} .bar em{{white-space:nowrap}}
.none{{margin:10px;color:#8e8e8e}}
</style></head><body><div class="top">outboxd <small>namespace=demo · job=outboxd · last {args.minutes:g} minutes · drawn from a real Prometheus by docs/monitoring/render.py (not Grafana)</small></div>
<div class="grid">{''.join(boxes)}</div></body></html>"""
    with tempfile.TemporaryDirectory() as d:
        index = Path(d) / "index.html"
        index.write_text(page)
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={24 * COL},{height + 56}", f"--screenshot={Path(args.out).resolve()}",
                        index.as_uri()], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
