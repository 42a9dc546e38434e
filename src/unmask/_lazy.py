"""Names a package exports but imports only when first used (PEP 562).

``import unmask`` must stay fast (the command line imports it before parsing ``--help``), while
``unmask.train`` or ``unmask.Detector`` pull in torch and timm, which take seconds.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str | tuple[str, str]]):
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a name to the module that
    defines it, or to ``(module, name there)`` when it is exported under another name, or to
    ``(module, None)`` for a module itself."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = exports[name] if isinstance(exports[name], tuple) else (exports[name], name)
        value = importlib.import_module(module)
        value = value if attribute is None else getattr(value, attribute)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # looked up once; later uses are plain attribute reads
        return value

    def __dir__():
        return sorted(set(importlib.import_module(package).__dict__) | set(exports))

    return __getattr__, __dir__
