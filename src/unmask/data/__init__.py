"""Stage 3: datasets on disk -> video items -> face crops + manifest, with split protocols.

``from unmask.data import prepare`` gives the function (imported on first use: prepare's worker
processes import submodules of this package and need none of it).
"""

from unmask._lazy import lazy_exports

_EXPORTS = {
    "prepare": "unmask.data.preparation",
    "merge_manifests": "unmask.data.preparation",
    "PrepareSummary": "unmask.data.preparation",
    "PrepareConfig": "unmask.data.config",
    "read_manifest": "unmask.data.manifest",
    "find_videos": "unmask.data.sources",
    "list_videos": "unmask.data.sources",
    "VideoItem": "unmask.data.sources",
    "DATASETS": "unmask.data.sources",
    "PROTOCOLS": "unmask.data.splits",
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
