"""Layer pickers that follow the viewer: refill a combo box without losing what the user chose."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox

_USER_PICK = "user_pick"


def track_user_picks(*combos: QComboBox) -> None:
    """Remember the entry a user picks by hand, so :func:`refill` keeps it over a default."""
    for combo in combos:
        combo.textActivated.connect(lambda text, combo=combo: combo.setProperty(_USER_PICK, text))


def refill(combo: QComboBox, names: list[str], default: str | None = None, *, auto_first: bool = True) -> bool:
    """Replace the entries of ``combo`` with ``names`` (signals blocked).

    The current entry stays if the user picked it by hand or if ``default`` is not available; otherwise
    ``default`` wins over an entry that was only chosen automatically (e.g. the first layer that existed).
    With ``auto_first=False`` nothing is selected when neither applies (the user must pick, e.g. so that a
    truth layer is never used silently).  Returns True when the current text changed.
    """
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    keep = current in names and (current == combo.property(_USER_PICK) or default not in names)
    pick = current if keep else default
    if pick is not None and pick in names:
        combo.setCurrentText(pick)
    elif not auto_first:
        combo.setCurrentIndex(-1)
    combo.blockSignals(False)
    return combo.currentText() != current
