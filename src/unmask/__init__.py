"""unmask: find deepfaked faces in videos, and show why.

The pipeline, one call per stage (each also a command: ``unmask prepare``, ``unmask train`` ...)::

    import unmask

    unmask.prepare("data/ffpp", "runs/faces", unmask.PrepareConfig("ffpp", size=224))
    unmask.train("runs/faces", "runs/effv2", unmask.make_config(model="efficientnetv2_s"))
    unmask.evaluate("runs/effv2", "runs/faces", "runs/effv2/eval-test")
    unmask.explain_file("runs/effv2", "clip.mp4", "why/")
    unmask.export("runs/effv2", "effv2.onnx")
    verdict = unmask.Detector.load("runs/effv2").predict("clip.mp4")
    unmask.predict_files("runs/effv2", ["uploads/"], "verdicts.jsonl", engine="ray")

Everything here is imported on first use, so that ``import unmask`` (and ``unmask --help``)
stays fast; torch and timm load with the first stage used. Settings carry the command line's
names (``PrepareConfig(size=...)`` is ``unmask prepare --size``).
"""

from unmask._lazy import lazy_exports
from unmask.errors import UnmaskError

__version__ = "0.1.0"

_EXPORTS = {
    # prepare: videos -> face crops + manifest
    "prepare": "unmask.data.preparation",
    "merge_manifests": "unmask.data.preparation",
    "PrepareConfig": "unmask.data.config",
    "PrepareSummary": "unmask.data.preparation",
    "FrameSampler": "unmask.video.sampling",
    # train: manifest -> calibrated checkpoint
    "train": "unmask.training.trainer",
    "TrainConfig": "unmask.training.config",
    "TrainResult": "unmask.training.trainer",
    "make_config": "unmask.training.config",
    "Costs": "unmask.decision.calibration",
    # evaluate: checkpoint + manifest -> metrics, report
    "evaluate": "unmask.evaluation.evaluator",
    "EvalResult": "unmask.evaluation.evaluator",
    # explain: heatmaps of a file's most suspicious faces
    "explain_file": "unmask.predict.explanation",
    "Explanation": "unmask.explain.explainer",
    # export: ONNX, TorchScript
    "export": ("unmask.predict.export", "export_model"),
    "ExportResult": "unmask.predict.export",
    # the judge
    "Detector": "unmask.predict.detector",
    "Prediction": "unmask.predict.result",
    "Heatmap": "unmask.predict.result",
    "TrackVerdict": "unmask.predict.result",
    "FrameScore": "unmask.predict.result",
    # many inputs into a results file, resumably, here or on a Ray cluster (engine="ray")
    "predict_files": "unmask.predict.files",
    # pass it on: a report of one judged clip; a detector shared by name (hf://ORG/NAME)
    "write_report": "unmask.predict.report",
    "push": ("unmask.predict.push", "push_run"),
}
__all__ = ["__version__", "UnmaskError", *_EXPORTS]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
