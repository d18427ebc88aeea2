"""report.html of a batch: it opens offline, links every figure that exists, and summarises across images."""

from __future__ import annotations

import html.parser
import io
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from napari_causal_lattice.batch import BatchItem, analyze_images
from napari_causal_lattice.figures import plot_summary
from napari_causal_lattice.report import (
    KEY_EDGES,
    _choose_edges,
    is_identity,
    summary_table,
    write_report,
)
from napari_causal_lattice.synthetic import synthetic_perovskite

FIGURES = ("image_columns", "descriptor_maps", "causal_graph", "sliding_grid", "overlay_Px_Py", "pca")


class Links(html.parser.HTMLParser):
    """Every ``src``/``href`` of a page, its ids, and whether it loads anything remote or runs scripts."""

    def __init__(self):
        super().__init__()
        self.links, self.images, self.ids, self.scripts = [], [], set(), 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.scripts += tag == "script"
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])
                if tag == "img":
                    self.images.append(attrs[key])


@pytest.fixture(scope="module")
def batch(tmp_path_factory, placeholder_figures):
    root = tmp_path_factory.mktemp("batch")
    paths = []
    for seed in (3, 4):
        sample = synthetic_perovskite(seed=seed, shape_cells=(18, 18), pitch=14.0, pixel_size=28.0)
        paths.append(root / f"scan{seed}.npy")
        np.save(paths[-1], sample.image)
    broken = root / "broken.npy"
    broken.write_text("not an image")
    out = root / "out"
    with placeholder_figures():  # the report links the figure files; test_figures.py draws them
        items = analyze_images([*paths, broken], out=out, window=8, n_bootstrap=4, seed=1, pixel_size=28.0,
                               figure_formats=("png", "svg"), dpi=50, stream=io.StringIO())
    return out, items


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def test_report_links_every_figure_and_every_link_resolves(batch):
    out, items = batch
    assert [i.status for i in items] == ["done", "done", "failed"]
    report = out / "report.html"
    page = parse(report)
    assert page.scripts == 0
    for link in page.links:
        assert not link.startswith(("http:", "https:", "//")), f"remote resource {link}: the report must open offline"
        if link.startswith("#"):
            assert link[1:] in page.ids, f"dangling anchor {link}"
        else:
            assert (out / unquote(link)).is_file(), f"{link} does not resolve from report.html"
    for stem in ("scan3", "scan4"):
        for name in FIGURES:
            assert f"{stem}/figures/{name}.png" in page.images
            assert f"{stem}/figures/{name}.svg" in page.links, "vector versions are linked"
    assert "report_files/summary.png" in page.images


def test_report_shows_edges_provenance_and_the_failed_image(batch):
    out, _ = batch
    text = (out / "report.html").read_text(encoding="utf-8")
    assert text.count("Global edges passing the confidence") == 2
    assert "95% low" in text and text.count("Parameters and provenance") == 2
    assert "&quot;window&quot;: 8" in text and "numpy 2." in text, "parameters and versions are shown"
    assert "broken.npy" in text and "failed" in text
    assert "pm/pm" in text, "couplings are given in physical units"
    assert text.count("criterion: calibrated: order t-test p &lt;= ") == 2, "the edge criterion is stated"
    assert "<th class='t'>link</th>" in text and "<th class=''>p_value</th>" in text
    assert text.count("window 8 cells; ") == 2 and "flagged cells" in text, "window used and flags per image"


def test_summary_table_and_figure_across_groups(batch):
    out, items = batch
    from napari_causal_lattice.store import load_results

    entries = [(Path(i.image).stem, group, load_results(i.out).lingam)
               for i, group in zip(items[:2], ("x = 0", "x = 0.2"))]
    assert KEY_EDGES[0] == ("Px", "Py") and not any(is_identity(*edge) for edge in KEY_EDGES)
    table = summary_table(entries, (("Vol", "a"), ("Px", "Py")))
    assert list(table["edge"]) == ["Vol <- a", "Px <- Py"] * 2
    assert set(table["unit"]) == {"pm^2/pm", "pm/pm"}
    assert (table["ci_low"] <= table["ci_high"]).all()
    fig = plot_summary(table)
    assert fig.get_size_inches()[0] == 7.2
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text")) if t.get_text()]
    assert min(t.get_fontsize() for t in texts) >= 7.0
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in axes] == ["Vol <- a", "Px <- Py"]
    assert [ax.get_ylabel() for ax in axes] == ["coefficient (pm^2/pm)", "coefficient (pm/pm)"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["scan3", "scan4"]
    assert fig.legends, "groups are told apart"
    again = write_report(out, items, groups={"scan3.npy": "x = 0", "scan4": "x = 0.2"})
    page = again.read_text(encoding="utf-8")
    assert again == out / "report.html" and "x = 0.2" in page
    # the figure shows physical couplings; the geometric identities are listed aside
    chosen = _choose_edges(entries, min_probability=0.5, n_edges=6)
    assert chosen[:2] == list(KEY_EDGES) and not any(is_identity(*edge) for edge in chosen)
    if _choose_edges(entries, min_probability=0.5, n_edges=0, identities=True):
        assert "Geometric identities, kept aside" in page


def test_report_of_a_batch_where_everything_failed(tmp_path):
    items = [BatchItem(image="a.tif", out=str(tmp_path / "a"), status="failed", message="no columns found")]
    page = write_report(tmp_path, items).read_text(encoding="utf-8")
    assert "no columns found" in page and "report_files" not in page


def test_groups_from_the_command_line(batch, tmp_path, capsys):
    """Paper Fig. 7 from one command: --groups labels the images of the report's summary."""
    from napari_causal_lattice.cli import main
    from napari_causal_lattice.report import parse_groups

    assert parse_groups("scan3=x 0; scan4 = x 0.2") == {"scan3": "x 0", "scan4": "x 0.2"}
    table = tmp_path / "groups.csv"
    table.write_text("image,group\nscan3.npy,x = 0\nscan4.npy,x = 0.2\n")
    assert parse_groups(str(table)) == {"scan3.npy": "x = 0", "scan4.npy": "x = 0.2"}
    for bad in ("scan3", "scan3=", str(tmp_path / "missing.csv")):
        with pytest.raises(ValueError, match="groups"):
            parse_groups(bad)
    out, items = batch
    images = [item.image for item in items if item.ok]
    # the finished images are skipped (resume): only the report is written again, with the groups
    code = main(["analyze", *images, "--out", str(out), "--window", "8", "--bootstrap", "4", "--seed", "1",
                 "--pixel-size", "28", "--groups", "scan3=x = 0;scan4=x = 0.2"])
    assert code == 0, capsys.readouterr().err
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "x = 0.2" in page and "x = 0<" in page
    assert main(["analyze", *images, "--out", str(out), "--groups", "scan3"]) == 2
    assert "IMAGE=GROUP" in capsys.readouterr().err
