"""Fixtures of the dock tests."""

from types import SimpleNamespace

import pytest


@pytest.fixture
def make_napari_viewer(make_napari_viewer):
    """napari's viewer factory, whose viewers drop their layers at teardown without napari's per-layer rebuild.

    napari 0.6.6 rebuilds the whole scene graph and runs a full garbage collection each time a layer is removed
    (``VispyCanvas._remove_layer``, a work-around for Windows OpenGL drivers): 1-3 s per layer on software OpenGL,
    15-38 s in the end-to-end test's teardown alone. The viewers are going away, so their layers are removed with
    both switched off; napari's own teardown then closes the empty viewers, collects garbage once and checks for
    leaked viewers as before.
    """
    from napari._vispy import canvas

    made = []

    def factory(*args, **kwargs):
        viewer = make_napari_viewer(*args, **kwargs)
        made.append(viewer)
        return viewer

    yield factory
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canvas.VispyCanvas, "_update_scenegraph", lambda self, event=None: None)
        patch.setattr(canvas, "gc", SimpleNamespace(collect=lambda *args: 0))
        for viewer in made:
            viewer.layers.clear()
