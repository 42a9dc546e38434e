"""User-facing errors: one line that says what failed, on which input, and what to do.

The CLI prints an :class:`UnmaskError` as one red line and exits non-zero; any other exception
is a bug and keeps its traceback.
"""


class UnmaskError(Exception):
    """Base class of every error caused by the user's input or environment.

    Messages name settings as Python does (``batch_size``, ``resume=True``), never as command-line
    flags; ``settings`` lists the ones a message names, so that the command line can show them as
    its flags instead (:meth:`for_cli`).
    """

    def __init__(self, message: str = "", *settings: str):
        super().__init__(message)
        self.settings = settings

    def for_cli(self, flags: dict[str, str] | None = None) -> str:
        """The message with each of :attr:`settings` written as its flag: ``batch_size`` as
        ``--batch-size``, ``resume=True`` as ``--resume``; ``flags`` maps settings whose flag
        is named otherwise."""
        import re

        text = str(self)
        for name in self.settings:
            flag = (flags or {}).get(name) or "--" + name.replace("_", "-")
            # A message that writes a setting as ``name=VALUE`` uses the bare word otherwise
            # ("ImageNet weights ... pass weights=FILE"): then only that form is the setting.
            explicit = re.search(rf"(?<![\w.-]){re.escape(name)}=", text) is not None
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}=True\b", flag, text)
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}=False\b", "--no-" + flag.removeprefix("--"), text)
            if explicit:
                text = re.sub(rf"(?<![\w.-]){re.escape(name)}=(?=\S)", flag + " ", text)
            else:
                text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", flag, text)
        return text


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


class SettingError(UnmaskError):
    """A setting has a value unmask cannot use (its name in :attr:`UnmaskError.settings`)."""


class UnknownNameError(UnmaskError):
    """A name (dataset, detector, sampler, protocol ...) is not one unmask knows."""


def unknown_name(kind: str, name: str, choices) -> UnknownNameError:
    """Build the error for an unknown ``name``, listing the valid ones and the closest match."""
    import difflib

    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(f"Unknown {kind} {name!r}; choose one of {', '.join(choices)}.{hint}")
