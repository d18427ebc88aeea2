"""Everything that imports napari or Qt: dock widgets, reader/writer/sample hooks and layer builders."""

from .._warmup import start_warmup

start_warmup()  # the plugin is in use: compile the causal kernels while the user finds columns
