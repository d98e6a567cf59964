"""The errors airflow-kfx raises.

Every error about a user's file names the file, the YAML path inside it (and the
line where known) and what to do. They deliberately do not subclass
``AirflowException`` so the spec layer stays free of Airflow imports; Airflow
treats any exception raised while parsing a DAG file as an import error, which is
what we want.
"""

from __future__ import annotations


class KfxError(Exception):
    """Base class of every error airflow-kfx raises on purpose."""


class SpecError(KfxError):
    """A pipeline or component file is invalid.

    ``file``: the path (or a label such as ``<text>``) of the input;
    ``yaml_path``: where inside it, e.g. ``root.dag.tasks.train.inputs``;
    ``line``: 1-based line number in the file, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        yaml_path: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.yaml_path = yaml_path
        self.line = line
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """``file:line: [yaml.path] message`` — the form ``kfx validate`` prints."""
        location = self.file or "<input>"
        if self.line is not None:
            location = f"{location}:{self.line}"
        where = f" (at {_short(self.yaml_path, 200)})" if self.yaml_path else ""
        return f"{location}: {self._kind()}{_short(self.message, 600)}{where}"

    def _kind(self) -> str:
        return ""


def _short(text: str, limit: int) -> str:
    """One line of at most about ``limit`` characters: messages quote values from the
    user's file, which may hold newlines or be megabytes long. The end is kept, because
    it usually says what to do."""
    text = " ".join(text.splitlines())
    if len(text) <= limit:
        return text
    tail = limit // 3
    return f"{text[: limit - tail]} … {text[-tail:]}"


class UnsupportedFeatureError(SpecError):
    """A valid KFP file uses a feature airflow-kfx does not translate (yet).

    ``feature`` is the short name listed in the README's "Not supported" table.
    """

    def __init__(
        self,
        feature: str,
        message: str,
        *,
        file: str | None = None,
        yaml_path: str | None = None,
        line: int | None = None,
    ) -> None:
        self.feature = feature
        super().__init__(message, file=file, yaml_path=yaml_path, line=line)

    def _kind(self) -> str:
        return f"unsupported feature '{self.feature}': "


class TaskRuntimeError(KfxError):
    """A task could not be prepared or run (inputs missing, outputs unreadable)."""
