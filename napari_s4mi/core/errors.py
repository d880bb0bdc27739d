"""User-facing errors: each carries one line that names the file or setting at fault and the fix."""


class S4MIError(Exception):
    """An error the user can act on; its message is a single line shown as is in the CLI and the GUI."""


class InputError(S4MIError):
    """A slide, mask or project file that cannot be used as it is."""


class ProjectError(S4MIError):
    """A project that is missing, empty, or lacks what the requested action needs."""


class TrainingError(S4MIError):
    """Training cannot go on (non-finite loss, out of memory, invalid settings)."""


class OutputError(S4MIError):
    """An output that cannot be written (no space left, read-only, no permission): never skipped in a batch."""
