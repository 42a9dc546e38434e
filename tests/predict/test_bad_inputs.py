"""The doors a user meets after training (predict, serve, export), tried carelessly and with
hostile inputs: every case of issue 22 (numbered as its rows), as a user meets it.

What each asserts: a user error is one line, no traceback, exit 1, and is found before any
judging; exit codes are as documented; CSV is quoted; a folder's files are judged or listed; a
clip that decodes in part is judged with a note; a bad upload gets the right status.

Most commands run in this process (``unmask.cli.main``, exactly what the ``unmask`` entry point
calls), which spares each one the start-up of a new Python with torch; the server's signals and
ports are tried on a real process in tests/serve/test_cli.py.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import signal
import sys
import struct
import zlib
from pathlib import Path

import pytest

from unmask.demo import write_video
from unmask.video import sample_frames

DOCS = Path(__file__).resolve().parents[2] / "docs"


class Ran:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    @property
    def one_line_error(self) -> bool:
        return (
            self.code == 1
            and self.err.startswith("error: ")
            and len(self.err.strip().splitlines()) == 1
            and "Traceback" not in self.err
        )


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*args)`` runs ``unmask ARGS`` in this process and returns its exit code and output."""
    import unmask.cli as cli_module

    def run(*args) -> Ran:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        term = signal.getsignal(signal.SIGTERM)
        monkeypatch.setattr(sys, "argv", ["unmask", *map(str, args)])
        try:
            cli_module.main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        finally:
            signal.signal(signal.SIGTERM, term)
            root.handlers[:], root.level = handlers, level
            cli_module._interrupt_hint.clear()
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture
def no_judging(monkeypatch):
    """Make any judging fail the test: a bad setting must be refused before it."""
    from unmask.predict.detector import Detector

    def judged(*args, **kwargs):
        raise AssertionError("an input was judged before the bad setting was refused")

    monkeypatch.setattr(Detector, "predict", judged)


@pytest.fixture(scope="module")
def run_dir(small_run):
    return small_run[0].run_dir


@pytest.fixture(scope="module")
def clip(demo_clips):
    return demo_clips / "fake" / "fake_astronaut_00.mp4"


# --- 1-4, 9, 10: settings and paths refused in one line, before any judging ------------------


def test_01_a_file_name_too_long_is_one_line(cli, run_dir, no_judging):
    ran = cli("predict", "x" * 300 + ".mp4", "--model", run_dir)
    assert ran.one_line_error and "File name too long" in ran.err, ran.err


def test_02_an_explain_folder_that_cannot_be_written_is_refused_before_judging(
    cli, run_dir, clip, tmp_path, no_judging
):
    (tmp_path / "a_file").write_text("")
    ran = cli("predict", clip, "--model", run_dir, "--explain", tmp_path / "a_file" / "why")
    assert ran.one_line_error and "--explain" in ran.err and "lies under a file" in ran.err, ran.err


def test_03_an_overlay_that_cannot_be_written_is_refused_before_judging(cli, run_dir, clip, tmp_path, no_judging):
    (tmp_path / "a_file").write_text("")
    ran = cli("predict", clip, "--model", run_dir, "--overlay", tmp_path / "a_file" / "boxed.mp4")
    assert ran.one_line_error and "--overlay" in ran.err and "cannot be written" in ran.err, ran.err
    ran = cli("predict", clip, "--model", run_dir, "--overlay", tmp_path)
    assert ran.one_line_error and "is a folder" in ran.err, ran.err


def test_04_an_unknown_device_is_one_line(cli, run_dir, clip, no_judging):
    ran = cli("predict", clip, "--model", run_dir, "--device", "tpu9")
    assert ran.one_line_error and "Unknown --device 'tpu9'" in ran.err, ran.err


@pytest.mark.parametrize("value", ["-1", "0"])
def test_09_10_a_frame_count_below_one_is_a_setting_error_not_a_silent_default(cli, run_dir, clip, value, no_judging):
    ran = cli("predict", clip, "--model", run_dir, "--num-frames", value)
    assert ran.one_line_error and f"--num-frames must be a whole number of at least 1, not {value}" in ran.err, ran.err


def test_09_10_the_library_refuses_them_too(run_dir, clip):
    from unmask import Detector
    from unmask.errors import SettingError

    detector = Detector.load(run_dir, device="cpu")
    for bad in (-1, 0):
        with pytest.raises(SettingError, match="num_frames must be"):
            detector.predict(clip, num_frames=bad)


# --- 5-7: serve and export ---------------------------------------------------------------------


@pytest.mark.parametrize("port", ["70000", "-5"])
def test_05_an_impossible_port_is_one_line_before_the_model_loads(cli, tmp_path, port):
    ran = cli("serve", "--model", tmp_path / "no-run", "--port", port)
    assert ran.one_line_error and f"--port must be from 0 (any free port) to 65535, not {port}" in ran.err, ran.err
    assert "serving" not in ran.out


@pytest.mark.parametrize("opset", ["3", "99"])
def test_06_an_opset_the_exporter_lacks_is_one_line(cli, run_dir, tmp_path, opset):
    pytest.importorskip("onnxruntime")
    ran = cli("export", run_dir, "--out", tmp_path / "m.onnx", "--opset", opset)
    assert ran.one_line_error and f"--opset must be from 7 to 20 (17 is the default), not {opset}" in ran.err, ran.err
    assert ran.out == "" and not (tmp_path / "m.onnx").exists()


def test_07_an_export_that_cannot_be_written_is_refused_before_the_export(cli, run_dir, tmp_path, monkeypatch):
    from unmask.decision import checkpoint

    def loaded(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad --out was refused")

    monkeypatch.setattr(checkpoint, "load_classifier", loaded)
    (tmp_path / "a_file").write_text("")
    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt")):
        if fmt == "onnx":
            pytest.importorskip("onnxruntime")
        ran = cli("export", run_dir, "--out", tmp_path / "a_file" / name, "--format", fmt)
        assert ran.one_line_error and "cannot be written" in ran.err, ran.err


# --- 8, 15: folders --------------------------------------------------------------------------


def test_08_csv_is_quoted_by_the_csv_module(cli, run_dir, clip, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a\nnewline.mp4", "b\rreturn.mp4", 'c, "quoted".mp4', "d plain.mp4"]
    for name in names:
        shutil.copy(clip, folder / name)
    ran = cli("predict", folder, "--model", run_dir, "--format", "csv", "--num-frames", "4")
    assert ran.code == 0, ran.err
    rows = list(csv.DictReader(io.StringIO(ran.out, newline="")))
    assert [r["input"] for r in rows] == [str(folder / name) for name in names]
    assert all(r["frames_sampled"] == "4" and r["verdict"] for r in rows)


def _frames(clip, n=8):
    return [f.image for f in sample_frames(clip)][:n]


def test_15_any_video_pyav_opens_is_judged_whatever_its_suffix_and_the_rest_is_named(cli, run_dir, clip, tmp_path):
    folder = tmp_path / "in"
    write_video(folder / "old.mpg", _frames(clip), fps=25, codec="mpeg1video")
    write_video(tmp_path / "named.mkv", _frames(clip), fps=8, codec="mpeg4").rename(folder / "no_suffix")
    shutil.copy(clip, folder / "clip.mp4")
    (folder / "notes.txt").write_text("not a video\n" * 200)  # FFmpeg would show it as ANSI art
    (folder / "data.bin").write_bytes(bytes(range(256)) * 40)
    ran = cli("predict", folder, "--model", run_dir, "--format", "jsonl", "--num-frames", "4")
    assert ran.code == 0, ran.err
    judged = [Path(json.loads(line)["input"]).name for line in ran.out.splitlines()]
    assert judged == ["clip.mp4", "no_suffix", "old.mpg"]
    assert "skipped 2 files that are neither videos nor images" in ran.err and "notes.txt" in ran.err
    assert "3 inputs, 0 unreadable, 2 other files skipped" in ran.err


def test_15_prepare_takes_them_too_and_lists_what_it_left_out(clip, tmp_path):
    import pandas as pd

    from unmask.data.preparation import PrepareConfig, prepare
    from unmask.data.sources import find_videos
    from unmask.video import FrameSampler

    root = tmp_path / "data"
    write_video(root / "real" / "old.mpg", _frames(clip), fps=25, codec="mpeg1video")
    (root / "fake").mkdir(parents=True)
    shutil.copy(clip, root / "fake" / "clip.mp4")
    (root / "fake" / "notes.txt").write_text("not a video\n" * 200)
    listing = find_videos(root, "folder")
    assert [i.video_id for i in listing.items] == ["fake/clip", "real/old"]
    assert [(i.video_id, reason.split(":")[0]) for i, reason in listing.skipped] == [("fake/notes.txt", "not a video")]
    summary = prepare(root, tmp_path / "out", PrepareConfig("folder", sampler=FrameSampler("uniform", 4), size=64))
    manifest = pd.read_parquet(summary.manifest)
    assert set(manifest["video_id"]) == {"fake/clip", "real/old"}
    failures = pd.read_csv(tmp_path / "out" / "failures.csv", keep_default_na=False)
    assert failures["video_id"].tolist() == ["fake/notes.txt"] and "not a video" in failures["reason"][0]


# --- 11: Ctrl-C --------------------------------------------------------------------------------


def test_11_ctrl_c_during_predict_says_what_was_kept(cli, run_dir, clip, tmp_path, monkeypatch):
    from unmask.predict.detector import Detector

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        shutil.copy(clip, folder / name)
    judge = Detector.predict
    calls = []

    def interrupted_on_the_second(self, path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return judge(self, path, **{**kwargs, "num_frames": 4})

    monkeypatch.setattr(Detector, "predict", interrupted_on_the_second)
    ran = cli("predict", folder, "--model", run_dir, "--format", "csv")
    assert ran.code == 130
    assert len(list(csv.DictReader(io.StringIO(ran.out)))) == 1
    assert "run the same command again to go on" not in ran.err and "all that was kept" in ran.err, ran.err


# --- 16: a clip that decodes in part ------------------------------------------------------------


def test_16_a_clip_cut_short_is_judged_with_a_note(cli, run_dir, clip, tmp_path):
    whole = write_video(tmp_path / "long.mkv", _frames(clip) * 10, fps=8, codec="mpeg4")  # 10 s
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.4)])  # the header still says 10 s
    ran = cli("predict", cut, "--model", run_dir, "--json", "--num-frames", "8")
    assert ran.code == 0, ran.err
    p = json.loads(ran.out)
    assert p["duration_s"] == pytest.approx(10.0, abs=0.2) and 2.0 < p["decoded_s"] < 6.0, p
    assert p["frames_sampled"] == 8 and p["timeline"], "it is judged on the part that decodes"
    assert p["note"].startswith(f"only {p['decoded_s']:.1f} s of its 10.0 s decode")
    ran = cli("predict", cut, "--model", run_dir, "--num-frames", "8")
    assert "  note: only " in ran.out
    whole_p = json.loads(cli("predict", whole, "--model", run_dir, "--json", "--num-frames", "8").out)
    assert whole_p["note"] is None and whole_p["decoded_s"] == pytest.approx(whole_p["duration_s"], abs=0.2)


# --- 14, 17: uploads --------------------------------------------------------------------------


def _png_1bit(width: int, height: int) -> bytes:
    """A black one-bit PNG: a few tens of KB on disk, ``width x height`` pixels when decoded."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def client(run_dir, tmp_path_factory):
    from fastapi.testclient import TestClient

    from unmask import Detector
    from unmask.serve import ServeSettings, create_app

    app = create_app(
        Detector.load(run_dir, device="cpu"), ServeSettings(upload_root=tmp_path_factory.mktemp("uploads"), heatmaps=0)
    )
    with TestClient(app) as http:
        http.app_state = app.state
        yield http


def test_14_an_upload_of_two_files_is_refused(client, clip):
    data = clip.read_bytes()
    response = client.post("/api/v1/jobs", files=[("file", ("a.mp4", data)), ("file", ("b.mp4", data))])
    assert response.status_code == 400 and "holds 2 files; send one file per request" in response.json()["detail"]
    response = client.post("/api/v1/jobs", files=[("file", ("a.mp4", data)), ("other", ("b.mp4", data))])
    assert response.status_code == 400, "a second file under another name is a second file too"
    assert client.get("/api/v1/health").json()["queued"] == 0


def test_17_a_picture_too_large_by_its_header_is_413_not_damaged(client):
    response = client.post("/api/v1/jobs", files={"file": ("huge.png", _png_1bit(20000, 20000))})
    assert response.status_code == 413, response.text
    assert "20000x20000" in response.json()["detail"] and "8192 px a side" in response.json()["detail"]


# --- 18: the exit codes, in --help and the docs -----------------------------------------------


def _codes(sentence: str) -> list[str]:
    return re.findall(r"(?:: |, )(\d+) ", sentence)


def _docs_exit_codes(command: str) -> list[str]:
    text = " ".join((DOCS / f"{command}.md").read_text().split())
    return _codes(text.split("Exit status", 1)[1].split(".", 1)[0])


@pytest.mark.parametrize(
    "command, expected",
    [("predict", ["0", "1", "2", "3", "130"]), ("serve", ["1", "2", "130"]), ("export", ["0", "1", "2", "130"])],
)
def test_18_help_and_docs_agree_on_every_exit_code(cli, command, expected):
    ran = cli(command, "--help")
    assert ran.code == 0
    text = " ".join(ran.out.split())
    assert _codes(text.split("Exit status", 1)[1].split(".", 1)[0]) == expected
    assert "a usage error" in text.split("Exit status:", 1)[1] and "130 " in text
    assert _docs_exit_codes(command) == expected


def test_18_every_format_is_in_the_docs():
    from unmask.cli.predict import FORMATS

    section = (DOCS / "predict.md").read_text()
    for fmt in FORMATS:
        assert f"`{fmt}`" in section or f"`--format {fmt}`" in section, fmt
