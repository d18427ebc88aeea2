"""The "Compare images" dock widget: causal couplings across several images grouped e.g. by composition.

A table lists the image layers (tick the ones to use, type a group label for each) and any results folders
added with "Add results folder..." (their cells are refitted with the shared parameters).  "Compare" runs
:func:`~napari_causal_lattice.compare.compare_stem_images` in a worker (columns -> cells -> fit per image,
progress over images), then plots the chosen coupling vs group with confidence intervals (Figs. 5/7 of
the paper) and the mean adjacency matrix of every group side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..lattice import DESCRIPTORS
from ._jobs import JobPanel
from .layers import META_KEY, is_map_layer

_USE, _NAME, _GROUP = range(3)


def is_stem_image(layer) -> bool:
    """True for a 2D grey image layer that is not one of our derived maps (descriptor, overlay, loading)."""
    return isinstance(layer, Image) and layer.ndim == 2 and not layer.rgb and not is_map_layer(layer)


def layer_pixel_size(layer) -> float | None:
    """pm per px of an image layer: the reader's / sample's ``metadata[META_KEY]["pixel_size"]``, else the
    layer scale when it carries a length unit, else None (lengths in px)."""
    meta = layer.metadata.get(META_KEY)
    if isinstance(meta, dict) and meta.get("pixel_size") is not None:
        return float(np.ravel(meta["pixel_size"])[-1])
    units = getattr(layer, "units", None)
    if units is None or str(units[-1].dimensionality) != "[length]":
        return None
    return float(layer.scale[-1] * (1 * units[-1]).to("pm").magnitude)


class CompareWidget(QWidget):
    """Compare causal couplings across images and groups.

    Attributes
    ----------
    jobs : JobPanel
        Runs the comparison.
    result : ComparisonResult or None
        Last comparison.
    figure : matplotlib Figure
        Coefficient vs group (top) and group adjacency matrices (bottom).
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result = None
        self._folders: dict[str, object] = {}
        layout = QVBoxLayout(self)

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["use", "image", "group"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(_USE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_NAME, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(_GROUP, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(130)
        layout.addWidget(QLabel("Images (tick to use; type a group label, e.g. the composition):"))
        layout.addWidget(self.table)
        self.add_folder_button = QPushButton("Add results folder...")
        self.add_folder_button.clicked.connect(self._choose_folder)
        layout.addWidget(self.add_folder_button)

        form = QFormLayout()
        self.n_bootstrap = QSpinBox()
        self.n_bootstrap.setRange(20, 5000)
        self.n_bootstrap.setValue(100)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        row = QHBoxLayout()
        row.addWidget(self.n_bootstrap)
        row.addWidget(QLabel("seed"))
        row.addWidget(self.seed)
        form.addRow("bootstrap resamples", row)
        self.shared_order = QCheckBox("one causal order for all images")
        self.shared_order.setToolTip("order from the pooled (per-image centred) data, then per-image pruning")
        self.standardize = QCheckBox("standardize each image (std/std)")
        form.addRow(self.shared_order)
        form.addRow(self.standardize)
        self.effect = QComboBox()
        self.cause = QComboBox()
        self.effect.addItems(DESCRIPTORS)
        self.cause.addItems(DESCRIPTORS)
        self.effect.setCurrentText("Px")
        self.cause.setCurrentText("Py")
        pair = QHBoxLayout()
        pair.addWidget(self.effect)
        pair.addWidget(QLabel("<-"))
        pair.addWidget(self.cause)
        form.addRow("coupling to plot", pair)
        layout.addLayout(form)
        self.run_button = QPushButton("Compare")
        self.run_button.clicked.connect(self._run_clicked)
        layout.addWidget(self.run_button)
        self.jobs = JobPanel()
        layout.addWidget(self.jobs)

        self.figure = Figure(figsize=(5, 5.5), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(420)
        layout.addWidget(self.canvas)
        self.effect.currentTextChanged.connect(self.redraw)
        self.cause.currentTextChanged.connect(self.redraw)
        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
        self.refresh_layers()
        self.redraw()

    def selection(self) -> dict[str, tuple[bool, str]]:
        """Image or folder name -> (ticked, group label), in table order."""
        out = {}
        for r in range(self.table.rowCount()):
            name = self.table.item(r, _NAME).text()
            use = self.table.item(r, _USE).checkState() == Qt.CheckState.Checked
            out[name] = (use, self.table.item(r, _GROUP).text())
        return out

    def refresh_layers(self, event=None) -> None:
        """List the 2D image layers and added results folders, keeping earlier ticks and group labels."""
        previous = self.selection()
        names = [layer.name for layer in self.viewer.layers if is_stem_image(layer)]
        names += list(self._folders)
        self.table.setRowCount(0)
        for name in names:
            use, group = previous.get(name, (True, "all"))
            r = self.table.rowCount()
            self.table.insertRow(r)
            check = QTableWidgetItem()
            check.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            check.setCheckState(Qt.CheckState.Checked if use else Qt.CheckState.Unchecked)
            label = QTableWidgetItem(name)
            label.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.table.setItem(r, _USE, check)
            self.table.setItem(r, _NAME, label)
            self.table.setItem(r, _GROUP, QTableWidgetItem(group))

    def set_group(self, name: str, group: str, *, use: bool = True) -> None:
        """Set the group label (and the tick) of the image or folder ``name``."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, _NAME).text() == name:
                self.table.item(r, _GROUP).setText(str(group))
                self.table.item(r, _USE).setCheckState(Qt.CheckState.Checked if use else Qt.CheckState.Unchecked)
                return
        raise ValueError(f"no image or results folder named {name!r} in the list")

    def add_results(self, path) -> str:
        """Add the cells of a results folder (from save_results / the CLI) as one more image; returns its name."""
        from ..io import load_results

        results = load_results(path)
        if results.cells is None:
            raise ValueError(f"{path} holds no cells; run the analysis up to Descriptors before comparing it")
        name = f"{Path(path).name} (results)"
        self._folders[name] = results.cells
        self.refresh_layers()
        return name

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Results folder")
        if path:
            try:
                self.add_results(path)
            except ValueError as exc:
                show_error(str(exc))

    def _run_clicked(self) -> None:
        try:
            self.run()
        except (ValueError, TypeError) as exc:
            show_error(str(exc))

    def run(self):
        """Start the comparison of the ticked images with the shared parameters; returns the worker."""
        from ..compare import compare_stem_images

        images, groups, sizes = {}, {}, {}
        for name, (use, group) in self.selection().items():
            if not use:
                continue
            if not group.strip():
                raise ValueError(f"image {name!r} has no group label; type one (e.g. its composition)")
            if name in self._folders:
                images[name] = self._folders[name]
            else:
                layer = self.viewer.layers[name]
                images[name] = np.asarray(layer.data, dtype=float)
                sizes[name] = layer_pixel_size(layer)
            groups[name] = group.strip()
        if not images:
            raise ValueError("tick at least one image layer (or add a results folder) to compare")
        return self.jobs.run(
            compare_stem_images, images, groups, pixel_size=sizes, n_bootstrap=self.n_bootstrap.value(),
            seed=self.seed.value(), shared_order=self.shared_order.isChecked(),
            standardize=self.standardize.isChecked(), on_result=self._on_result, label="compare images",
        )

    def _on_result(self, result) -> None:
        self.result = result
        self.redraw()

    def redraw(self, *args) -> None:
        """Draw the chosen coupling vs group and the group adjacency matrices of the last result."""
        from ..compare import plot_coefficient_vs_group, plot_group_adjacency

        self.figure.clear()
        if self.result is None:
            ax = self.figure.add_subplot()
            ax.text(0.5, 0.5, "tick images, type their groups,\nthen press Compare", ha="center", va="center",
                    transform=ax.transAxes, color="0.4", fontsize="small")
            ax.set_axis_off()
            self.canvas.draw_idle()
            return
        effect, cause = self.effect.currentText(), self.cause.currentText()
        n_groups = len(self.result.group_names)
        top, bottom = self.figure.subfigures(2, 1, height_ratios=[1.2, 1])
        ax = top.add_subplot()
        if effect != cause and effect in self.result.names and cause in self.result.names:
            plot_coefficient_vs_group(ax, self.result, effect, cause)
        else:
            ax.text(0.5, 0.5, "choose two different variables", ha="center", va="center", transform=ax.transAxes)
        axes = bottom.subplots(1, n_groups, squeeze=False)[0]
        image = plot_group_adjacency(axes, self.result)
        label = "coefficient [std/std]" if self.result.standardized else "coefficient (symlog)"
        bar = bottom.colorbar(image, ax=list(axes), shrink=0.8, label=label)
        top_value = image.norm.vmax
        bar.set_ticks([-top_value, -top_value / 100, 0.0, top_value / 100, top_value])
        bar.set_ticklabels([f"{v:.2g}" for v in (-top_value, -top_value / 100, 0.0, top_value / 100, top_value)])
        self.canvas.draw_idle()
