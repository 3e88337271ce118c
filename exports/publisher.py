"""Writes an export as a Frictionless data package (plain json + pandas/pyarrow).

Files of a package (``EXT`` is ``parquet`` or ``csv``):

- ``participants.EXT``, ``daily_features.EXT``, ``weekly_flags.EXT``, ``aggregates.EXT``;
- ``privacy_report.json``: policy version, k achieved, participants and cells suppressed, row counts;
- ``datapackage.json``: a ``data-package`` (Frictionless) with one ``tabular-data-resource`` per table, its
  Table Schema from the versioned data dictionary (:mod:`exports.fields`, UCUM units), bytes and SHA-256, plus
  the privacy report as a plain ``data-resource`` (JSON is not tabular, so the package as a whole is not a
  ``tabular-data-package``, and it is typed ``json`` so that frictionless does not take a ``*report.json``
  for one of its own validation reports); ``dataDictionary`` gives the dictionary's version and changelog.
  The package passes ``frictionless validate`` (tested for CSV and Parquet). Two concessions to frictionless's
  Parquet reader, which reads through pandas: a Parquet resource declares no ``bytes`` (the reader counts
  none, so any declared count "mismatches"; the SHA-256 ``hash`` is kept and checked by
  :mod:`exports.checker`), and its schema lists ``"nan"`` among the missing values (pandas turns a null of an
  integer column into NaN, which the reader then shows as the text ``nan``);
- ``manifest.json``: SHA-256 of every other file (written last).

No file holds a calendar date, a timestamp, the project key or any internal identifier.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from exports.fields import DICTIONARY_CHANGELOG, DICTIONARY_VERSION, table_schema
from exports.policy import ExportPolicy

__all__ = ["TABLES", "TableWriter", "file_sha256", "write_frame", "write_metadata"]

TABLES: tuple[str, ...] = ("participants", "daily_features", "weekly_flags", "aggregates")
_ARROW = {"integer": pa.int64(), "number": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}


def arrow_schema(table: str, policy: ExportPolicy) -> pa.Schema:
    """Arrow schema matching the Table Schema of ``table``."""
    return pa.schema([(f["name"], _ARROW[f["type"]]) for f in table_schema(table, policy)["fields"]])


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TableWriter:
    """Incremental writer of one released table (parquet row groups or CSV chunks).

    With ``background=True`` the encoding and compression of each table happen on a writer thread (pyarrow
    releases the GIL there) while the caller prepares the next one; at most two tables wait. Errors of the
    writer thread are raised by the next ``write`` or by ``close``.
    """

    def __init__(self, folder: Path, table: str, fmt: str, policy: ExportPolicy, background: bool = False) -> None:
        self.path = folder / f"{table}.{fmt}"
        self.schema = arrow_schema(table, policy)
        self.rows = 0
        self._fmt = fmt
        self._writer: pq.ParquetWriter | pacsv.CSVWriter
        if fmt == "parquet":
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        else:
            self._writer = pacsv.CSVWriter(self.path, self.schema,
                                           write_options=pacsv.WriteOptions(quoting_style="needed"))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{table}") if background else None
        self._pending: list[Future[None]] = []

    def write(self, data: pa.Table | pd.DataFrame) -> None:
        """Append rows (columns are cast to the table's schema)."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        table = table.select(self.schema.names).cast(self.schema)
        self.rows += table.num_rows
        if self._pool is None:
            self._writer.write_table(table)
            return
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._writer.write_table, table))

    def close(self) -> None:
        """Finish the file (an empty table still gets its header or parquet footer)."""
        try:
            for fut in self._pending:
                fut.result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._writer.close()


def write_frame(folder: Path, table: str, frame: pd.DataFrame, fmt: str, policy: ExportPolicy) -> int:
    """Write a whole table at once; returns its row count."""
    writer = TableWriter(folder, table, fmt, policy)
    writer.write(frame)
    writer.close()
    return writer.rows


def _resource(folder: Path, table: str, fmt: str, policy: ExportPolicy) -> dict[str, Any]:
    path = folder / f"{table}.{fmt}"
    media = "application/vnd.apache.parquet" if fmt == "parquet" else "text/csv"
    res: dict[str, Any] = {"name": table.replace("_", "-"), "path": path.name, "profile": "tabular-data-resource",
                           "format": fmt, "mediatype": media, "hash": f"sha256:{file_sha256(path)}",
                           "schema": table_schema(table, policy)}
    if fmt == "csv":
        res["bytes"] = path.stat().st_size
        res["encoding"] = "utf-8"
        res["dialect"] = {"delimiter": ",", "header": True}
    else:
        res["schema"]["missingValues"] = ["", "nan"]  # see the module docstring
    return res


def _dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")


def write_metadata(folder: Path, fmt: str, project: str, report: dict[str, Any], notes: list[str],
                   policy: ExportPolicy) -> dict[str, str]:
    """Write ``privacy_report.json``, ``datapackage.json`` and ``manifest.json``.

    Returns
    -------
    dict of str to str
        File name -> hex SHA-256 of every file in the package, ``manifest.json`` included.
    """
    _dump(folder / "privacy_report.json", report)
    resources = [_resource(folder, t, fmt, policy) for t in TABLES]
    resources.append({"name": "privacy-report", "path": "privacy_report.json", "profile": "data-resource",
                      "type": "json", "format": "json", "mediatype": "application/json",
                      "bytes": (folder / "privacy_report.json").stat().st_size,
                      "hash": f"sha256:{file_sha256(folder / 'privacy_report.json')}"})
    package = {"profile": "data-package", "name": _package_name(project),
               "title": f"Fatigue study research export ({project})",
               "description": "Pseudonymised special-category data: use only under the data-sharing agreement, "
                              "in the controlled environment. Programme days and weeks replace calendar dates.",
               "version": policy.version, "licenses": [{"name": "other-closed", "title": "Data-sharing agreement"}],
               "dataDictionary": {"version": DICTIONARY_VERSION,
                                  "changelog": [{"version": v, "changes": c} for v, c in DICTIONARY_CHANGELOG]},
               "notes": notes, "resources": resources}
    _dump(folder / "datapackage.json", package)
    hashes = {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.name != "manifest.json"}
    _dump(folder / "manifest.json", {"algorithm": "sha256", "files": hashes})
    hashes["manifest.json"] = file_sha256(folder / "manifest.json")
    return hashes


def _package_name(project: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in project.lower()).strip("-")
    return f"fatigue-export-{cleaned or 'project'}"
