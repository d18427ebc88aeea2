"""Shared test fixtures."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest

_REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    for base in (_REPO.parent / "shared" / "data", _REPO.parent.parent / "shared" / "data"):
        if base.is_dir():
            return base
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder with the real STEM test images (read in place, never copied: some are GPL)."""
    path = _find_shared_data()
    if path is None:
        pytest.skip(_ABSENT)
    return path


#: The shared real images the tests analyse, with the pixel sizes their folders' READMEs give (pm/px).
STO_ADF = ("atomap_sto_adf_abf/test_ADF_cropped_image.npy", 9.326)
PTO_SRO = ("temul_pto_sro_supercrystal/Cropped_PTO-SRO_Aligned_image.npy", 14.997)


def _found(shared_data: Path, source) -> tuple:
    from napari_causal_lattice.columns import find_columns

    name, pixel_size = source
    image = np.load(shared_data / name).astype(float)
    return image, find_columns(image, pixel_size=pixel_size)


@pytest.fixture(scope="session")
def sto_columns(shared_data) -> tuple:
    """(image (400, 380) float64, Columns at 9.326 pm/px) of the SrTiO3 [110] ADF image, with ``find_columns``
    defaults: found once for the whole run, so tests must not change them (derive new objects instead)."""
    return _found(shared_data, STO_ADF)


@pytest.fixture(scope="session")
def pto_columns(shared_data) -> tuple:
    """(image (224, 1312) float64, Columns at 14.997 pm/px) of the PTO/SRO supercrystal, with ``find_columns``
    defaults: found once for the whole run, so tests must not change them (derive new objects instead)."""
    return _found(shared_data, PTO_SRO)


def _write_placeholder(path) -> None:
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n placeholder: figure not drawn in this test")


@contextlib.contextmanager
def _placeholder_figures():
    from napari_causal_lattice import figures
    from napari_causal_lattice.pipeline import write_outputs

    real = figures.figure_writers

    def placeholders(results, image=None, **options):
        return {name: _write_placeholder for name in real(results, image, **options)}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules[write_outputs.__module__], "figure_writers", placeholders)
        yield


@pytest.fixture(scope="session")
def placeholder_figures():
    """A context manager: while active, saved results get every figure file the real writers would write (same
    names and formats), each a placeholder.  Drawing the figures takes about a minute per image, and tests of
    bookkeeping, reports or scale-out do not look at them (test_figures.py and test_pipeline.py draw them)."""
    return _placeholder_figures


@pytest.fixture
def figures_not_drawn():
    """The test runs with :func:`placeholder_figures` active."""
    with _placeholder_figures():
        yield


_ABSENT = ("real-data test: the shared STEM images are absent (looked for "
           + " and ".join(str(p) for p in (_REPO.parent / "shared" / "data", _REPO.parent.parent / "shared" / "data"))
           + ")")


def pytest_terminal_summary(terminalreporter):
    """One line at the end of the run saying how many real-data tests did not run, and why."""
    if _find_shared_data() is not None:
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if _ABSENT in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} real-data tests skipped: {_ABSENT.split(': ', 1)[1]}",
                                    yellow=True)


@pytest.fixture(scope="session")
def two_scans(tmp_path_factory) -> Path:
    """A folder with two different small images as .npy files (first.npy, second.npy: 16 x 16 cells, 25 pm/px)."""
    from napari_causal_lattice.synthetic import synthetic_perovskite

    folder = tmp_path_factory.mktemp("scans")
    for name, seed in (("first", 2), ("second", 5)):
        image = synthetic_perovskite(seed=seed, shape_cells=(16, 16), pitch=14.0, pixel_size=25.0).image
        np.save(folder / f"{name}.npy", image)
    return folder
