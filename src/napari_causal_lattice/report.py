"""One HTML report per batch: a summary across images and groups, then every image's figures, edges and provenance.

:func:`write_report` writes ``report.html`` in the batch folder.  It opens offline: it has no script and no
remote resource; figures are the PNG files of each image's results folder (and of ``report_files/`` for the
summary), linked by relative paths, so the batch folder can be moved or zipped whole.  Vector versions (SVG,
PDF) are linked next to each figure when they were written.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path

import numpy as np

from ._moved import moved
from ._version import __version__

__all__ = ["write_report", "summary_table", "is_identity", "parse_groups", "REPORT_NAME",
           "KEY_EDGES", "GEOMETRIC"]

#: Drawing helpers that lived here (old name -> new module).
_MOVED = {"plot_summary": "napari_causal_lattice.figures"}

#: File name of the report in the batch folder.
REPORT_NAME = "report.html"
#: Couplings always in the summary (the paper's Fig. 7): (effect, cause).
KEY_EDGES = (("Px", "Py"), ("Py", "I5"))
#: Descriptors tied by geometry (Vol = a b sin(alpha)): an edge between two of them restates the identity, not
#: a physical coupling, so the summary puts such edges aside.
GEOMETRIC = ("a", "b", "alpha", "Vol")


def is_identity(effect: str, cause: str) -> bool:
    """True for an edge between two geometric descriptors (:data:`GEOMETRIC`): a restated identity."""
    return effect in GEOMETRIC and cause in GEOMETRIC
#: Order and captions of the figures of one image.
_FIGURES = {
    "image_columns": "The image with the atom columns found (A: orange, B: blue).",
    "scan_jitter": "The scan-line jitter estimated from the image: the shift of each scan line along x.",
    "descriptor_maps": "The 8 descriptors of every unit cell, on the image (robust colour limits).",
    "causal_graph": "Global causal graph and adjacency (edges passing the confidence only).",
    "sliding_grid": "Every element of the sliding-window adjacency on the image (paper Figs. 4, 6).",
    "overlay_Px_Py": "The sliding map Px <- Py in physical units.",
    "pca": "PCA of the sliding adjacency: components next to their loading maps (paper Fig. 5).",
}
_CSS = """
body { font-family: sans-serif; max-width: 1250px; margin: 1em auto; padding: 0 1em; color: #222; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; } th { background: #f0f0f0; }
td.t, th.t { text-align: left; } figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #444; } .failed { color: #a00; } pre { font-size: 0.75em; overflow-x: auto; }
.warnings { background: #fff6e0; border-left: 4px solid #d08000; padding: 0 0.8em; }
nav a { margin-right: 1em; }
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _link(path: Path, root: Path) -> str:
    """``path`` as a link from ``root``: relative (forward slashes, URL-quoted) when inside it, else a file URI."""
    from urllib.parse import quote

    path, root = Path(path).resolve(), Path(root).resolve()
    if path.is_relative_to(root):
        return quote(path.relative_to(root).as_posix())
    return path.as_uri()


def _table(frame, *, text_columns=()) -> str:
    head = "".join(f"<th class='{'t' if c in text_columns else ''}'>{_esc(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for c, v in zip(frame.columns, row):
            shown = f"{v:.4g}" if isinstance(v, (float, np.floating)) and np.isfinite(v) else (
                "" if isinstance(v, (float, np.floating)) else v)
            cells.append(f"<td class='{'t' if c in text_columns else ''}'>{_esc(shown)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def summary_table(entries, edges, *, min_probability: float = 0.5):
    """Tidy table of chosen global couplings across images, in physical units with 95 % bootstrap intervals.

    Parameters
    ----------
    entries : sequence of (name, group, LingamResult)
    edges : sequence of (effect, cause)
    min_probability : float
        Confidence an edge needs to count as shown (``shown`` column).

    Returns
    -------
    DataFrame
        Columns ``image``, ``group``, ``edge``, ``coefficient``, ``ci_low``, ``ci_high``, ``unit``,
        ``probability``, ``shown``.
    """
    import pandas as pd

    from .figures import edge_mask
    from .figures import coupling_unit

    rows = []
    for name, group, lingam in entries:
        mask = edge_mask(lingam, min_probability)
        table = lingam.edges(in_units=True)
        for effect, cause in edges:
            if effect not in lingam.names or cause not in lingam.names:
                continue
            i, j = lingam.index(effect), lingam.index(cause)
            hit = table[(table["effect"] == effect) & (table["cause"] == cause)]
            lo, hi = (float(hit["ci_low"].iloc[0]), float(hit["ci_high"].iloc[0])) if len(hit) else (0.0, 0.0)
            rows.append({"image": name, "group": group, "edge": f"{effect} <- {cause}",
                         "coefficient": lingam.coefficient(effect, cause, in_units=True), "ci_low": lo, "ci_high": hi,
                         "unit": coupling_unit(lingam.units, effect, cause),
                         "probability": float(lingam.probabilities[i, j]) if lingam.probabilities is not None
                         else float("nan"),
                         "shown": bool(mask[i, j])})
    return pd.DataFrame(rows, columns=["image", "group", "edge", "coefficient", "ci_low", "ci_high", "unit",
                                       "probability", "shown"])


def _choose_edges(entries, *, min_probability: float, n_edges: int,
                  identities: bool = False) -> list[tuple[str, str]]:
    """:data:`KEY_EDGES` plus the physical couplings shown in most images (largest mean |standardised
    coefficient| first); with ``identities=True`` instead the edges between geometric descriptors
    (:func:`is_identity`) shown in any image."""
    from .figures import edge_mask

    counts: dict = {}
    for _, _, lingam in entries:
        mask = edge_mask(lingam, min_probability)
        for i, j in zip(*np.nonzero(mask)):
            key = (lingam.names[i], lingam.names[j])
            if is_identity(*key) != identities:
                continue
            n, size = counts.get(key, (0, 0.0))
            counts[key] = (n + 1, size + abs(float(lingam.adjacency[i, j])))
    ranked = sorted(counts, key=lambda k: (-counts[k][0], -counts[k][1]))
    if identities:
        return ranked
    chosen = list(KEY_EDGES) + [k for k in ranked if k not in KEY_EDGES]
    return chosen[:n_edges]


def _image_section(anchor: str, item, results, folder: Path, root: Path, *, min_probability: float) -> str:
    """HTML of one image: inputs, figures, table of global edges, parameters and provenance."""
    from .figures import edge_mask

    name = Path(item.image).name
    parts = [f"<h2 id='{_esc(anchor)}'>{_esc(name)}</h2>",
             f"<p>status: {_esc(item.status)}{'; ' + _esc(item.message) if item.message else ''}; "
             f"results: <a href='{_link(folder, root)}/manifest.json'>{_esc(folder.name)}/</a></p>"]
    info = results.image_info or {}
    ps = info.get("pixel_size")
    parts.append(f"<p>source {_esc(info.get('source', item.image))}, {info.get('shape')} px, pixel size "
                 f"{_esc(f'{ps:.4g} pm/px' if ps else 'unknown (maps in px)')}, sha256 "
                 f"<code>{_esc(str(info.get('sha256', ''))[:16])}</code>&hellip;"
                 + "".join(f"<br>note: {_esc(n)}" for n in info.get("notes", [])) + "</p>")
    facts = _step_facts(results.steps or {})
    if facts:
        parts.append(f"<p class='facts'>{_esc(facts)}</p>")
    parts.append(_warnings_section(results.steps or {}))
    for fig, caption in _FIGURES.items():
        png = folder / "figures" / f"{fig}.png"
        if not png.is_file():
            continue
        vectors = [f"<a href='{_link(png.with_suffix('.' + ext), root)}'>{ext.upper()}</a>" for ext in ("svg", "pdf")
                   if png.with_suffix("." + ext).is_file()]
        parts.append(f"<figure><img src='{_link(png, root)}' alt='{_esc(fig)}'><figcaption>{_esc(caption)}"
                     f"{' Vector: ' + ', '.join(vectors) if vectors else ''}</figcaption></figure>")
        if fig == "causal_graph" and results.lingam is not None:
            parts.append(_edges_section(results.lingam, edge_mask(results.lingam, min_probability), min_probability))
            parts.append(_instrument_section(results))
    parts.append(_provenance_section(results))
    return "\n".join(parts)


def _warnings_section(steps: dict) -> str:
    """The run's warnings (calibration, near-deterministic descriptors, skipped steps), one per line."""
    from .pipeline import step_warnings

    found = step_warnings(steps)
    if not found:
        return ""
    return ("<div class='warnings'><h3>Warnings</h3><ul>" + "".join(f"<li>{_esc(w)}</li>" for w in found)
            + "</ul></div>")


def _step_facts(steps: dict) -> str:
    """The run's facts (sliding window used, flagged cells by reason, notes) in one line."""
    from .pipeline import step_summary

    return step_summary(steps)


def _edges_section(lingam, mask, min_probability: float) -> str:
    table = lingam.edges(in_units=True)
    shown = np.array([mask[lingam.index(e), lingam.index(c)] for e, c in zip(table["effect"], table["cause"])],
                     dtype=bool)
    table = table[shown] if len(table) else table
    table = table.rename(columns={"ci_low": "95% low", "ci_high": "95% high"})
    std = [lingam.coefficient(e, c) for e, c in zip(table["effect"], table["cause"])]
    table.insert(3, "standardised", std)
    from .figures import edge_criterion

    return (f"<h3>Global edges passing the confidence, physical units</h3>"
            f"<p>criterion: {_esc(edge_criterion(lingam, min_probability))}.</p>"
            f"{_table(table, text_columns=('cause', 'effect', 'unit', 'link'))}"
            "<p><code>p_value</code>: order t-test of the coefficient given the causal order; "
            "<code>significant</code> and <code>link</code>: the calibrated decision (link \"a &lt;-&gt; b\": "
            "linked, direction not resolved by the bootstrap); <code>probability</code>: lingam's bootstrap "
            "probability, for comparison with the paper. The 95 % interval is the 2.5-97.5 percentile range of the bootstrap coefficient (zeros included). "
            "A standardised coefficient beyond &plusmn;3 marks collinear descriptors, not an effect size.</p>")


def _instrument_section(results) -> str:
    """Links the measurement itself produces: the edges the instrument null reproduces, or why none was run."""
    title = "<h3>Links the measurement itself produces</h3>"
    null = getattr(results, "null", None)
    if null is None:
        return (title + "<p>No instrument null was run: the edges above are tested against counting noise only, not "
                "against what probe tails, scan jitter and shared corners produce in a crystal without physics. "
                "Rerun with <code>--null-images 20</code> (Python: <code>instrument_null</code>).</p>")
    lingam = results.lingam
    instrument = getattr(lingam, "instrument", None)
    labelled = [] if instrument is None else [f"{lingam.names[i]} <- {lingam.names[j]}"
                                              for i, j in zip(*np.nonzero(instrument))]
    rates = null.rates()
    rates = rates[rates["rate"] > 0].head(12)
    return (title + f"<p>{null.n_images} images re-rendered from this image's model with the physics removed (B "
            "columns at their cells' centres on a smooth lattice, the measured intensities, noise and jitter "
            "re-drawn) and measured the same way. An edge counts as significant only when it beats both the "
            f"calibrated test and this null. Labelled <b>instrument</b> (the null reproduces them): "
            f"{_esc(', '.join(labelled) or 'none')}.</p>"
            + (f"<p>How often the null images' own fits call an edge significant:</p>"
               f"{_table(rates, text_columns=('cause', 'effect'))}" if len(rates) else
               "<p>No null image produced a significant edge.</p>"))


def _provenance_section(results) -> str:
    manifest = results.manifest or {}
    params = {name: (content.get("provenance") or {}).get("params", {})
              for name, content in manifest.get("contents", {}).items()}
    versions = manifest.get("versions", {})
    return ("<h3>Parameters and provenance</h3>"
            f"<p>versions: {_esc(', '.join(f'{k} {v}' for k, v in versions.items()))}</p>"
            f"<details><summary>parameters of every step</summary><pre>{_esc(json.dumps(params, indent=1))}</pre>"
            "</details>")


def parse_groups(text: str) -> dict[str, str]:
    """Group labels of images from the command line: ``"scan3=x 0;scan4=x 0.2"`` or a CSV file with the columns
    ``image`` and ``group`` (image file name or stem; e.g. the composition).

    Raises
    ------
    ValueError
        An entry without ``=``, an empty name or label, or a file without those two columns.
    """
    path = Path(text)
    if path.suffix.lower() == ".csv" or path.is_file():
        import pandas as pd

        try:
            table = pd.read_csv(path, dtype=str)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the groups file {text!r}: {exc}") from None
        if not {"image", "group"} <= set(table.columns):
            raise ValueError(f"the groups file {text!r} needs the columns 'image' and 'group' (one row per image)")
        pairs = list(zip(table["image"].fillna(""), table["group"].fillna("")))
    else:
        pairs = []
        for entry in filter(None, (e.strip() for e in text.split(";"))):
            if "=" not in entry:
                raise ValueError(f"groups: write each entry as IMAGE=GROUP, separated by ';' (got {entry!r})")
            name, label = entry.split("=", 1)
            pairs.append((name, label))
    groups = {str(name).strip(): str(label).strip() for name, label in pairs}
    if not groups or any(not name or not label for name, label in groups.items()):
        raise ValueError(f"groups: every entry needs an image name and a group label (got {text!r})")
    return groups


def write_report(out, items, *, groups=None, min_probability: float = 0.5, n_edges: int = 6, style="paper") -> Path:
    """Write ``out/report.html`` for a batch analysed by :func:`~napari_causal_lattice.batch.analyze_images`.

    Parameters
    ----------
    out : str or Path
        The batch folder (parent of the per-image results folders).
    items : sequence of BatchItem
        The batch's outcome, one per image (failed ones are listed with their message).
    groups : mapping, optional
        Image file name (or stem) -> group label (e.g. a composition) for the summary; default: one group.
    min_probability : float
        Confidence an edge needs to be shown (when the results carry no calibrated decision).
    n_edges : int
        Couplings in the summary: :data:`KEY_EDGES` and the edges shown in most images.
    style : str or FigureStyle
        Look of the summary figure.

    Returns
    -------
    Path
        The report file.
    """
    from .figures import get_style
    from .store import load_results

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    groups = dict(groups or {})
    loaded, sections = [], []
    for k, item in enumerate(items):
        anchor = f"image-{k + 1}"
        folder = Path(item.out)
        if item.status == "failed" or not (folder / "manifest.json").is_file():
            sections.append(f"<h2 id='{anchor}'>{_esc(Path(item.image).name)}</h2>"
                            f"<p class='failed'>failed: {_esc(item.message)}</p>")
            continue
        results = load_results(folder)
        stem = Path(item.image).stem
        group = groups.get(Path(item.image).name, groups.get(stem, "all"))
        if results.lingam is not None:
            loaded.append((stem, str(group), results.lingam))
        sections.append(_image_section(anchor, item, results, folder, root, min_probability=min_probability))
    summary = _summary_section(root, items, loaded, min_probability=min_probability, n_edges=n_edges,
                               style=get_style(style))
    nav = "".join(f"<a href='#image-{k + 1}'>{_esc(Path(item.image).name)}</a>" for k, item in enumerate(items))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>napari-causal-lattice report"
            f"</title><style>{_CSS}</style></head><body><h1>napari-causal-lattice report</h1>"
            f"<p>{len(items)} images, written {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} "
            f"by napari-causal-lattice {_esc(__version__)}.</p><nav><a href='#summary'>summary</a>{nav}</nav>"
            f"{summary}{''.join(sections)}</body></html>")
    path = root / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path


def _summary_section(root: Path, items, loaded, *, min_probability, n_edges, style) -> str:
    import pandas as pd
    from matplotlib import rc_context

    from .figures import plot_summary

    status = pd.DataFrame({"image": [Path(i.image).name for i in items], "status": [i.status for i in items],
                           "seconds": [i.seconds for i in items], "message": [i.message for i in items]})
    parts = ["<h2 id='summary'>Summary across images</h2>", _table(status, text_columns=("image", "status", "message"))]
    if loaded:
        edges = _choose_edges(loaded, min_probability=min_probability, n_edges=n_edges)
        table = summary_table(loaded, edges, min_probability=min_probability)
        if len(table):
            files = root / "report_files"
            files.mkdir(exist_ok=True)
            with rc_context(style.rc):
                fig = plot_summary(table, style=style)
                for ext in ("png", "svg"):
                    fig.savefig(files / f"summary.{ext}", dpi=150)
            parts.append("<figure><img src='report_files/summary.png' alt='summary'><figcaption>Physical couplings "
                         "per image with their 95 % bootstrap intervals, in physical units (the paper's Fig. 7). "
                         "Vector: <a href='report_files/summary.svg'>SVG</a></figcaption></figure>")
            parts.append(_table(table, text_columns=("image", "group", "edge", "unit", "shown")))
        aside = _choose_edges(loaded, min_probability=min_probability, n_edges=0, identities=True)
        if aside:
            identity = summary_table(loaded, aside, min_probability=min_probability)
            parts.append("<h3>Geometric identities, kept aside</h3><p>Edges between a, b, alpha and Vol restate "
                         "Vol = a b sin(alpha) rather than a physical coupling; they are listed here and left out "
                         "of the figure above.</p>")
            parts.append(_table(identity, text_columns=("image", "group", "edge", "unit", "shown")))
    return "\n".join(parts)


def __getattr__(name: str):
    return moved(__name__, _MOVED, name)
