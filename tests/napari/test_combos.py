"""Layer pickers: a default replaces an automatic pick, a hand pick survives a refill."""

from qtpy.QtWidgets import QComboBox

from napari_causal_lattice._napari._combos import refill, track_user_picks


def test_default_replaces_an_automatic_pick(qtbot):
    combo = QComboBox()
    qtbot.addWidget(combo)
    track_user_picks(combo)
    refill(combo, ["A columns"], "B columns")  # docked before the B layer existed: first entry shown
    assert combo.currentText() == "A columns"
    assert refill(combo, ["A columns", "B columns"], "B columns")
    assert combo.currentText() == "B columns"


def test_hand_pick_survives_and_missing_default_keeps_current(qtbot):
    combo = QComboBox()
    qtbot.addWidget(combo)
    track_user_picks(combo)
    refill(combo, ["B columns", "B columns [2]"], "B columns")
    combo.setCurrentIndex(1)
    combo.textActivated.emit("B columns [2]")  # what a click in the list emits
    assert not refill(combo, ["B columns", "B columns [2]", "Px [pm]"], "B columns")
    assert combo.currentText() == "B columns [2]"
    assert not refill(combo, ["B columns [2]", "other"], None)
    assert combo.currentText() == "B columns [2]"
