"""The browsable ``index.html``: thumbnails by year, category and variable, plus cutflow tables.

A static page with relative links, so the plot folder can be copied or served as is.
"""
from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from collections.abc import Sequence
from html import escape
from pathlib import Path

from pc_core.atomic import atomic_write_bytes

from .draw import PlotRecord, safe_name

_CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:2px solid #3f90da}h3{margin-top:1.2em}
nav a{margin-right:.8em}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;width:240px;text-align:center}
figure img{width:240px;border:1px solid #ccc;background:#fff}
figure img.broken{border:2px solid red}
figcaption{font-size:.85em;word-break:break-all}
table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
tr.data td{font-weight:bold}
.meta{color:#666;font-size:.9em}
"""

# marks images that fail to load, so a broken report is visible at a glance
_JS = """
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('img').forEach(function (img) {
    img.addEventListener('error', function () { img.classList.add('broken'); img.dataset.broken = '1'; });
  });
});
"""


def _fmt(value, digits: str = ".4g") -> str:
    if value is None:
        return "&ndash;"
    return format(value, digits)


def _cutflow_html(record: PlotRecord) -> str:
    if not record.table:
        return ""
    steps = [k for k in record.table[0] if k not in ("sample", "data", "yield", "yield_err")]
    head = "".join(f"<th>{escape(s)}</th>" for s in ["sample", *steps, "weighted yield"])
    rows = []
    for e in record.table:
        cells = [f"<td>{escape(e['sample'])}</td>"]
        cells += [f"<td>{e[s]:.0f}</td>" for s in steps]
        yld = _fmt(e["yield"])
        if e["yield"] is not None and e["yield_err"] is not None:
            yld += f" &plusmn; {_fmt(e['yield_err'], '.2g')}"
        cells.append(f"<td>{yld}</td>")
        rows.append(f"<tr class=\"{'data' if e['data'] else 'mc'}\">{''.join(cells)}</tr>")
    link = f' <a href="{escape(record.csv)}">CSV</a>' if record.csv else ""
    return f"<table class=\"cutflow\"><tr>{head}</tr>{''.join(rows)}</table><p>{link}</p>"


def _figure(record: PlotRecord, caption: str) -> str:
    fmt = "png" if "png" in record.files else next(iter(record.files))
    target = escape(record.files[fmt])
    others = " ".join(f'<a href="{escape(p)}">{escape(f)}</a>' for f, p in record.files.items())
    thumb = escape(record.thumbnail or record.files[fmt])
    return (f'<figure><a href="{target}"><img src="{thumb}" alt="{escape(caption)}"></a>'
            f"<figcaption>{escape(caption)}<br>{others}</figcaption></figure>")


def anchor(year: str, category: str) -> str:
    return f"{safe_name(year)}--{safe_name(category)}"


def render_index(records: Sequence[PlotRecord], title: str, inputs: Sequence[str]) -> str:
    by_year: dict[str, dict[str, list[PlotRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_year[r.year][r.category].append(r)
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<link rel=\"icon\" href=\"data:,\">",  # no favicon request (a 404 in the console)
        f"<title>{escape(title)}</title><style>{_CSS}</style><script>{_JS}</script></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class=\"meta\">{len([r for r in records if r.kind != 'cutflow'])} plots from "
        f"{escape(', '.join(inputs))}; made {_dt.datetime.now().isoformat(timespec='seconds')}</p>",
        "<nav>" + " ".join(
            f'<a href="#{anchor(y, c)}">{escape(y)} / {escape(c)}</a>' for y in by_year for c in by_year[y]
        ) + ' <a href="#by-variable">by variable</a></nav>',
    ]
    variables: dict[str, dict[tuple[str, str], PlotRecord]] = defaultdict(dict)
    for year, cats in by_year.items():
        for cat, recs in cats.items():
            parts.append(f'<h2 id="{anchor(year, cat)}">{escape(year)} &mdash; category {escape(cat)}</h2>')
            for rec in (r for r in recs if r.kind == "cutflow"):
                parts.append("<h3>Cutflow</h3><div class=\"grid\">" + _figure(rec, "cutflow") + "</div>")
                parts.append(_cutflow_html(rec))
            plots = sorted((r for r in recs if r.kind != "cutflow"), key=lambda r: r.name)
            if plots:
                parts.append("<h3>Variables</h3><div class=\"grid\">")
                parts.extend(_figure(r, r.name) for r in plots)
                parts.append("</div>")
            for r in plots:
                variables[r.name][(year, cat)] = r
    columns = [(y, c) for y in by_year for c in by_year[y]]
    parts.append('<h2 id="by-variable">By variable</h2><table><tr><th>variable</th>'
                 + "".join(f"<th>{escape(y)} / {escape(c)}</th>" for y, c in columns) + "</tr>")
    for name in sorted(variables):
        cells = []
        for key in columns:
            rec = variables[name].get(key)
            if rec is None:
                cells.append("<td></td>")
            else:
                fmt = "png" if "png" in rec.files else next(iter(rec.files))
                cells.append(f'<td><a href="{escape(rec.files[fmt])}">{escape(fmt)}</a></td>')
        parts.append(f"<tr><td>{escape(name)}</td>{''.join(cells)}</tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def write_index(outdir: Path, records: Sequence[PlotRecord], title: str, inputs: Sequence[str]) -> Path:
    path = Path(outdir) / "index.html"
    atomic_write_bytes(path, render_index(records, title, inputs).encode())
    return path
