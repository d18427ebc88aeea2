"""The synthetic perovskite opens through the plugin's sample-data contribution with scale, units and truth."""

import numpy as np

from napari_causal_lattice._napari.layers import META_KEY
from napari_causal_lattice._napari.sample import sample_layer_tuples
from napari_causal_lattice.synthetic import SyntheticTruth, synthetic_perovskite


def test_sample_opens_via_plugin_with_scale_and_units(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-causal-lattice", "synthetic_perovskite")
    names = [layer.name for layer in viewer.layers]
    assert names == ["Synthetic perovskite", "A columns (truth)", "B columns (truth)"]
    image = viewer.layers["Synthetic perovskite"]
    np.testing.assert_allclose(image.scale, (19.8, 19.8))
    assert [str(u) for u in image.units] == ["picometer", "picometer"]
    truth = image.metadata[META_KEY]["truth"]
    assert isinstance(truth, SyntheticTruth)
    assert image.data.shape == (1070, 1070)
    for name, count in (("A columns (truth)", 49 * 49), ("B columns (truth)", 48 * 48)):
        points = viewer.layers[name]
        assert not points.visible
        assert len(points.data) == count
        np.testing.assert_allclose(points.scale, image.scale)
        assert [str(u) for u in points.units] == ["picometer", "picometer"]
    # a truth A column lands on a bright image pixel in world coordinates
    a_points = viewer.layers["A columns (truth)"]
    world = a_points.data_to_world(a_points.data[100])
    pixel = np.rint(image.world_to_data(world)).astype(int)
    assert image.data[tuple(pixel)] > 100
    np.testing.assert_allclose(a_points.data, truth.a_positions)


def test_layer_tuples_of_a_small_sample_features():
    sample = synthetic_perovskite(seed=2, shape_cells=(6, 7))
    image, a_points, b_points = sample_layer_tuples(sample)
    assert image[2] == "image" and a_points[2] == "points" and b_points[2] == "points"
    assert image[1]["metadata"][META_KEY]["synthetic"] is sample
    np.testing.assert_array_equal(b_points[1]["features"]["region"], sample.truth.region.reshape(-1))
    np.testing.assert_array_equal(a_points[1]["features"]["i"], sample.truth.a_grid[:, 0])
