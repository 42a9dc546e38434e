"""unmask: find deepfaked faces in videos, and show why."""

__version__ = "0.1.0"
