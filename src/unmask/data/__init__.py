"""Stage 3: datasets on disk -> video items -> face crops + manifest, with split protocols."""
