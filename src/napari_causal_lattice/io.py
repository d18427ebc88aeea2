"""Former home of the image readers and the results store, kept so that existing scripts' ``from
napari_causal_lattice.io import ...`` keep working.

The code lives in :mod:`napari_causal_lattice.readers` (reading images, units of length, content hashes) and
:mod:`napari_causal_lattice.store` (saving, loading, checking and locking results folders); import from those
modules, or the public names from :mod:`napari_causal_lattice` itself.  This module only re-exports their public
names and holds no code of its own.
"""

from .readers import (
    IMAGE_EXTENSIONS,
    LoadedImage,
    array_sha256,
    check_scale_unit,
    file_sha256,
    length_to_pm,
    load_image,
)
from .store import (
    ARRAYS_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    RESULT_CLASSES,
    STALE_SECONDS,
    Results,
    ResultsBusy,
    ResultsError,
    ResultsLock,
    check_results_target,
    clean_stale_temp,
    columns_frame,
    load_results,
    manifest_checksum,
    results_complete,
    resume_status,
    run_changes,
    run_record,
    save_results,
)

__all__ = [
    "IMAGE_EXTENSIONS", "LoadedImage", "array_sha256", "check_scale_unit", "file_sha256", "length_to_pm",
    "load_image",
    "ARRAYS_NAME", "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST_NAME", "RESULT_CLASSES", "STALE_SECONDS", "Results",
    "ResultsBusy", "ResultsError", "ResultsLock", "check_results_target", "clean_stale_temp", "columns_frame",
    "load_results", "manifest_checksum", "results_complete", "resume_status", "run_changes", "run_record",
    "save_results",
]
