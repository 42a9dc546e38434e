"""The package's floors (DESIGN.md): every import, inside functions too, points down."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "unmask"

# Higher floors may import lower ones. Root modules (errors, settings, _lazy, the package itself)
# are the ground every room stands on.
FLOORS = {
    "video": 0,
    "utils": 0,
    "faces": 1,
    "models": 1,
    "data": 2,
    "decision": 3,
    "explain": 3,
    "training": 4,
    "evaluation": 4,
    "demo": 0,
    "predict": 5,
    "recipes": 5,
    "testing": 5,
    "serve": 6,
    "cli": 7,
    "__main__": 8,
}
GROUND = {"errors", "settings", "_lazy", ""}
# Rooms on one floor that may import the other (never the reverse).
SIDEWAYS = {("training", "evaluation"), ("explain", "decision")}


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "unmask":
        return None
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path):
    """``(imported unmask module, line)`` for every import in ``path``, at any depth."""
    module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                yield ".".join(base + ([node.module] if node.module else [])), node.lineno
            else:
                yield node.module or "", node.lineno


def edges():
    """``(from room, to room, where)`` for every import between rooms."""
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        me = "" if rel == Path("__init__.py") else rel.parts[0].removesuffix(".py")
        for module, line in imports(path):
            other = room_of(module)
            if other is None or other == me:
                continue
            yield me, other, f"{rel}:{line} imports {module}"


def test_every_room_has_a_floor():
    rooms = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    rooms |= {p.stem for p in SRC.glob("*.py")} - GROUND - {"__init__"}
    assert rooms - set(FLOORS) == set(), "give each new package a floor in FLOORS (DESIGN.md's layout)"


def test_imports_point_down():
    upward = []
    for me, other, where in edges():
        if other in GROUND:
            continue
        if me in GROUND or not (FLOORS[other] < FLOORS[me] or (me, other) in SIDEWAYS):
            upward.append(where)
    assert upward == [], "imports that point up or sideways (a circle waiting):\n" + "\n".join(upward)


@pytest.mark.parametrize("low, high", [("decision", "predict"), ("faces", "models"), ("evaluation", "training")])
def test_the_check_sees_an_import_inside_a_function(low, high, tmp_path, monkeypatch):
    # a module whose function imports from a room on a higher (or the same, the wrong way) floor
    fake = tmp_path / "unmask" / low
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text(f"def f():\n    from unmask.{high}.x import y\n")
    monkeypatch.setitem(globals(), "SRC", tmp_path / "unmask")
    found = [(me, other) for me, other, _ in edges()]
    assert (low, high) in found
    bad = [(me, other) for me, other in found if not (FLOORS[other] < FLOORS[me] or (me, other) in SIDEWAYS)]
    assert bad == [(low, high)]
