"""The project's error type: the CLI prints its message on one line and exits non-zero."""


class MocapError(Exception):
    """A user-facing error whose message says what went wrong and how to fix it."""


def missing_extra(package: str, extra: str) -> ImportError:
    """ImportError for a heavy optional dependency, naming the pip extra that installs it."""
    return ImportError(f"{package} is not installed; install it with: pip install 'mocap-lift[{extra}]'")
