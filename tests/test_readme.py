"""The README's Python example runs as written and gives the planted answers."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README lost its Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    sliding, profile, sample = namespace["sliding"], namespace["profile"], namespace["sample"]
    assert namespace["px_py"].shape == sliding.adjacency.shape[:2]
    assert namespace["pca"].components.shape == (4, 8, 8)
    # the planted wall: Px <- Py flips sign and its width comes back within 20 %
    assert profile.sign_change
    assert abs(profile.params["Lc"] - sample.truth.wall["width_px"]) <= 0.2 * sample.truth.wall["width_px"]
    assert (tmp_path / "results" / "manifest.json").exists()
    # run twice, the example replaces its own results instead of stopping at them
    exec(compile(blocks[0][blocks[0].index("ncl.save_results("):], "README.md", "exec"), namespace)
    assert np.isfinite(namespace["result"].adjacency).all()
    # the calibrated edges and the flag counts the example shows
    edges, cells = namespace["edges"], namespace["cells"]
    assert {"significant", "link"} <= set(edges.columns)
    assert edges["significant"].any()
    assert sum(cells.flag_counts().values()) <= 0.01 * len(cells.table)
    assert namespace["mask"].shape == namespace["px_py"].shape and namespace["mask"].dtype == bool
