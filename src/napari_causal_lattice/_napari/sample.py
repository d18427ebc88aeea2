"""napari sample-data hook: the synthetic perovskite with its planted truth."""

from __future__ import annotations

from ..synthetic import SyntheticSample, synthetic_perovskite
from .layers import META_KEY

SAMPLE_NAME = "Synthetic perovskite"


def sample_layer_tuples(sample: SyntheticSample) -> list[tuple]:
    """LayerDataTuples of a synthetic sample: the image and hidden truth Points layers "A/B columns (truth)".

    The image is shown in pm (scale = pixel size, units "pm"); the Points data are (y, x) in px with the same
    scale, so they sit on the columns.  The image's ``metadata[META_KEY]`` holds ``{"synthetic": sample,
    "truth": sample.truth, "pixel_size": ..., "provenance": ...}``.
    """
    ps = float(sample.pixel_size)
    scale = (ps, ps)
    units = ("pm", "pm")
    truth = sample.truth
    image_meta = {META_KEY: {"synthetic": sample, "truth": truth, "pixel_size": ps,
                             "provenance": sample.provenance}}
    image = (sample.image, {"name": SAMPLE_NAME, "scale": scale, "units": units, "colormap": "gray",
                            "metadata": image_meta}, "image")
    a_points = (truth.a_positions, {
        "name": "A columns (truth)", "scale": scale, "units": units, "visible": False, "size": 6,
        "face_color": "orange", "border_width": 0,
        "features": {"i": truth.a_grid[:, 0], "j": truth.a_grid[:, 1], "intensity": truth.a_intensity},
        "metadata": {META_KEY: {"truth": truth, "image": SAMPLE_NAME}},
    }, "points")
    b_points = (truth.b_positions, {
        "name": "B columns (truth)", "scale": scale, "units": units, "visible": False, "size": 5,
        "face_color": "cyan", "border_width": 0,
        "features": {"i": truth.b_grid[:, 0], "j": truth.b_grid[:, 1], "intensity": truth.b_intensity,
                     "region": truth.region.reshape(-1)},
        "metadata": {META_KEY: {"truth": truth, "image": SAMPLE_NAME}},
    }, "points")
    return [image, a_points, b_points]


def make_synthetic_sample() -> list[tuple]:
    """Sample-data command: the default synthetic perovskite (seed 0) as LayerDataTuples."""
    return sample_layer_tuples(synthetic_perovskite(seed=0))
