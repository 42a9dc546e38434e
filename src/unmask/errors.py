"""User-facing errors: one line that says what failed, on which input, and what to do.

The CLI prints an :class:`UnmaskError` as one red line and exits non-zero; any other exception
is a bug and keeps its traceback.
"""


class UnmaskError(Exception):
    """Base class of every error caused by the user's input or environment."""


class VideoReadError(UnmaskError):
    """A file is not a readable video, or holds no decodable frame."""


class UnsupportedMediaError(VideoReadError):
    """A file is not a video at all (text, audio, an unknown format) or uses a codec that cannot be decoded."""


class NoFaceFoundError(UnmaskError):
    """No face was found where one was needed."""


class DatasetLayoutError(UnmaskError):
    """A dataset root is missing, empty, or laid out unlike the chosen adapter expects."""


class ManifestError(UnmaskError):
    """A manifest is missing, incomplete, or lacks the asked split or protocol."""


class UnknownNameError(UnmaskError):
    """A name (dataset, detector, sampler, protocol ...) is not one unmask knows."""


def unknown_name(kind: str, name: str, choices) -> UnknownNameError:
    """Build the error for an unknown ``name``, listing the valid ones and the closest match."""
    import difflib

    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(f"Unknown {kind} {name!r}; choose one of {', '.join(choices)}.{hint}")
