"""Everything that imports napari or Qt: dock widgets, reader/writer/sample hooks and layer builders."""
