"""Importing class labels from a CSV, all or nothing: every row is checked before one atomic manifest save.

Two layouts, told apart by the header (names are matched case-insensitively):

- class names: ``image_id,label`` (multi-label: names separated by ``;``). A ``class_name`` column wins over a
  ``label`` column, which may then hold numbers (ISIC ``labels.csv``: ``image_id,label,class_name,has_mask``;
  the numbers only order the classes). Other columns are ignored.
- one-hot / multi-hot: ``image_id,<one column per class>`` with 0/1 values (``0.0``/``1.0`` too), e.g. the
  ISIC-2017 part 3 ground truth ``image_id,melanoma,seborrheic_keratosis``. In single-label mode an all-zero
  row is the none class (ISIC: nevus), listed first: the classes are ``[none_class, *columns]``; in multi-label
  mode it is a slide with no positive label.

Image ids match slides by id, file name or stem. Rows overwrite the labels of the slides they name; with
``replace`` the class list, mode and none class come from this import and every other slide is unlabeled.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import InputError
from .labels import LabelStore
from .manifest import LabelSchema, validated_label_schema

ID_COLUMNS = ("image_id", "id", "image", "slide", "slide_id", "filename", "file", "name")
NAME_COLUMNS = ("class_name", "label", "labels", "class")


@dataclass(frozen=True)
class LabelImportSummary:
    """What an import did: slides labeled, the resulting mode and classes, counts per class, labels replaced."""

    path: Path
    slides: int
    mode: str
    classes: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)
    changed: int = 0

    def __str__(self) -> str:
        counts = ", ".join(f"{name} {n}" for name, n in self.counts.items())
        changed = f"; {self.changed} earlier labels replaced" if self.changed else ""
        slides = f"{self.slides} slide{'' if self.slides == 1 else 's'}"
        return f"{self.path.name}: class labels of {slides} imported ({self.mode}-label: {counts}){changed}"


@dataclass
class _Table:
    """A CSV read as rows (line number, cells) with its id column and either a names column or class columns."""

    path: Path
    rows: list[tuple[int, dict[str, str]]]
    id_col: str
    names_col: str | None = None
    order_col: str | None = None  # numeric label beside class_name: orders new classes
    class_cols: list[str] = field(default_factory=list)


class LabelImport(LabelStore):
    """``import_labels_csv``: class labels from a CSV, all or nothing."""

    def import_labels_csv(
        self,
        path: str | os.PathLike[str],
        mode: str | None = None,
        none_class: str | None = None,
        replace: bool = False,
    ) -> LabelImportSummary:
        """Import class labels (see the module docstring); InputError naming the row and the fix, nothing saved.

        ``mode`` 'single' or 'multi' defaults to the project's mode (else single). A project with label classes
        keeps them: every class in the CSV must be one of them (``replace=True`` starts over from the CSV).
        """
        table = _read_table(Path(path).expanduser())
        schema = self._import_schema(table, mode, none_class, replace)
        labels = self._validated_rows(table, schema, fresh=replace or not self.label_schema.classes)
        records = [*self.slides, *self._vanished.values()]
        # slides whose earlier labels this import replaces, or (replace) removes
        changed = sum(1 for r in records if r.labeled and (replace or r.id in labels) and r.labels != labels.get(r.id))
        with self._transaction():
            self.label_schema = schema
            for rec in records:
                if replace or rec.id in labels:
                    rec.labeled, rec.labels = rec.id in labels, list(labels.get(rec.id, []))
        counts = dict.fromkeys(schema.classes, 0)
        for names in labels.values():
            for name in names:
                counts[name] += 1
        return LabelImportSummary(table.path, len(labels), schema.mode, schema.classes, counts, changed)

    def _import_schema(self, table: _Table, mode: str | None, none_class: str | None, replace: bool) -> LabelSchema:
        """The label schema after the import: the project's, or (fresh) one built from the CSV."""
        path, current = table.path, self.label_schema
        if mode is not None and mode not in ("single", "multi"):
            raise InputError(f"{path}: label mode {mode!r} is not 'single' or 'multi'; pick one")
        if current.classes and not replace:
            if mode is not None and mode != current.mode:
                raise InputError(
                    f"{path}: the project's class labels are {current.mode}-label, not {mode}-label; import with "
                    f"mode={current.mode!r}, or with replace=True to start over"
                )
            if none_class is not None and current.none_class not in (None, none_class):
                raise InputError(
                    f"{path}: the project's none class is {current.none_class!r}, not {none_class!r}; "
                    "pass that name, or replace=True to start over"
                )
            unknown = [c for c in table.class_cols if c not in current.classes]
            if unknown:
                raise InputError(
                    f"{path}: row 1: column {unknown[0]!r} is not a label class of the project "
                    f"({', '.join(current.classes)}); rename the column, or import with replace=True"
                )
            classes, mode, none_class = list(current.classes), current.mode, none_class or current.none_class
        else:
            mode = mode or (current.mode if current.classes else "single")
            classes = list(table.class_cols) if table.class_cols else _names_in_order(table)
            if none_class is not None and none_class not in classes and mode == "single":
                classes.insert(0, none_class)
        if not classes:
            raise InputError(f"{path}: no class name in column {table.names_col!r}; fill in the labels")
        try:
            return validated_label_schema(classes, mode, none_class)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from exc

    def _validated_rows(self, table: _Table, schema: LabelSchema, fresh: bool) -> dict[str, list[str]]:
        """Slide id -> labels (in class order) for every row; InputError at the first bad row."""
        index = self._id_index()
        first_row: dict[str, int] = {}
        labels: dict[str, list[str]] = {}
        for line, row in table.rows:
            where = f"{table.path}: row {line}"
            image_id = (row.get(table.id_col) or "").strip()
            if not image_id:
                raise InputError(f"{where}: no image id; fill it in or remove the row")
            matches = index.get(image_id, set())
            if not matches:
                raise InputError(f"{where}: no slide {image_id} in the project; remove the row or add the slide")
            if len(matches) > 1:
                raise InputError(
                    f"{where}: {image_id} matches several slides ({', '.join(sorted(matches))}); use the file name"
                )
            (slide_id,) = matches
            if slide_id in first_row:
                raise InputError(
                    f"{where}: {slide_id} is given again (first on row {first_row[slide_id]}); remove one of them"
                )
            first_row[slide_id] = line
            names = _split_names(row.get(table.names_col, "")) if table.names_col else _row_columns(table, row, where)
            labels[slide_id] = _checked_names(names, schema, where, fresh, table.names_col is None)
        return labels

    def _id_index(self) -> dict[str, set[str]]:
        """Slide ids by every name a CSV may use for them: id, file name, stem."""
        index: dict[str, set[str]] = {}
        for slide_id in self.ids:
            path = PurePosixPath(slide_id)
            for key in {slide_id, path.name, path.stem}:
                index.setdefault(key, set()).add(slide_id)
        return index


def _read_table(path: Path) -> _Table:
    """Read the CSV and find its columns; InputError for an unreadable file or an unusable header."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fieldnames = [(name or "").strip() for name in reader.fieldnames or []]
            reader.fieldnames = fieldnames
            rows = [(reader.line_num, {k: (v or "") for k, v in row.items() if isinstance(k, str)}) for row in reader]
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file; give the path of the labels CSV") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the labels CSV ({type(exc).__name__}: {exc}); check the file") from exc
    header = {name.lower(): name for name in fieldnames if name}
    id_col = next((header[c] for c in ID_COLUMNS if c in header), None)
    if id_col is None:
        raise InputError(
            f"{path}: row 1: no image id column ({', '.join(ID_COLUMNS[:4])}) in {fieldnames}; rename the header"
        )
    if not rows:
        raise InputError(f"{path}: no rows below the header; add one row per labeled slide")
    table = _Table(path, rows, id_col)
    table.names_col = next((header[c] for c in NAME_COLUMNS if c in header), None)
    if table.names_col is not None and table.names_col.lower() == "class_name" and "label" in header:
        table.order_col = header["label"]
    if table.names_col is None:
        table.class_cols = [name for name in fieldnames if name and name != id_col]
        if not table.class_cols:
            raise InputError(
                f"{path}: row 1: no label column and no class columns; add a 'label' column or one 0/1 column per class"
            )
    return table


def _split_names(cell: str) -> list[str]:
    return [name.strip() for name in cell.split(";") if name.strip()]


def _names_in_order(table: _Table) -> list[str]:
    """The class names of a names table: by their numeric label when one is given beside, else alphabetically."""
    rank: dict[str, float] = {}
    for _, row in table.rows:
        number = _number(row.get(table.order_col, "")) if table.order_col else None
        for name in _split_names(row.get(table.names_col or "", "")):
            value = number if number is not None else math.inf
            rank[name] = min(rank.get(name, math.inf), value)
    return sorted(rank, key=lambda name: (rank[name], name))


def _number(text: str | None) -> float | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _row_columns(table: _Table, row: dict[str, str], where: str) -> list[str]:
    """The columns holding 1 in a row of a one-hot / multi-hot table."""
    names = []
    for col in table.class_cols:
        cell = (row.get(col) or "").strip()
        value = _number(cell)
        if value not in (0.0, 1.0):
            raise InputError(f"{where}: {col}={cell!r} is not 0 or 1; fix the row")
        if value == 1.0:
            names.append(col)
    return names


def _checked_names(names: list[str], schema: LabelSchema, where: str, fresh: bool, one_hot: bool) -> list[str]:
    """A row's labels checked against the schema and put in class order; the none class for an empty row."""
    unknown = [name for name in names if name not in schema.classes]
    if unknown:
        also = "" if fresh else ", or import with replace=True"
        raise InputError(
            f"{where}: unknown class {unknown[0]!r} (classes: {', '.join(schema.classes)}); fix the row{also}"
        )
    if schema.mode == "single":
        if len(names) > 1:
            what = (
                f"neither one-hot nor all-zero (1 in {', '.join(names)})"
                if one_hot
                else f"several labels {';'.join(names)!r}"
            )
            raise InputError(f"{where}: {what} in single-label mode; use multi-label mode or fix the row")
        if not names:
            if schema.none_class is None:
                what = "all-zero row" if one_hot else "no label"
                raise InputError(
                    f"{where}: {what} and no none class; pass a none-class name (none_class=NAME, --none-class NAME) "
                    "for such rows, or use multi-label mode"
                )
            names = [schema.none_class]
    return [c for c in schema.classes if c in names]
