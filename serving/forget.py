"""Forget customers: remove them from every store winback wrote, log it, check nothing is left.

:func:`forget_customers` is what ``winback forget`` runs. In order, holding the
erasure registry's lock:

1. the score store: every version holding them is republished without them
   (scores, features, suppressions) and the catalogue rebuilt
   (``serving.scoring.store.erase_customers``);
2. saved lists: ``list.parquet`` and ``list.csv`` rewritten without them, the
   manifest's counts updated (``erased_rows``), manifest last;
3. every other table file under the output folder (quarantine files, feature
   files), under the MLflow artifact root (list CSVs logged by earlier
   versions, table artifacts) and the files written with ``--out`` (validated
   tables, quarantine files, feature tables, exported lists): rewritten without
   their rows;
4. the erasure registry records a salted hash per customer (never the id),
   the time and what was rewritten; loaders quarantine their rows from then on;
5. a check: every file under the output folder (except the shop's own input
   data), the MLflow root and the files written with ``--out``, inside Parquet,
   DuckDB and SQLite files too.
   Files still mentioning them are returned as problems.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from features.erasure import ErasureRegistry
from features.erasure_files import (
    erase_from_file,
    erase_from_tree,
    erase_rows,
    files_under,
    mentions,
)
from features.publish import publish_file, publish_text
from serving.lists.export import list_csv
from serving.lists.store import (
    CSV_NAME,
    PARQUET_NAME,
    ListManifest,
    list_folder,
    list_ids,
    read_manifest,
    write_manifest,
)
from serving.scoring import store

SIMULATED_SHOP_MARKER = "simulation.json"


@dataclass(frozen=True)
class ForgetStores:
    """Where winback wrote: the output folder, its score and list stores, the MLflow root.

    ``input_data`` are folders or files holding the shop's own input (left as
    they are: the shop erases its sources; winback quarantines the rows from then on).
    ``written`` are files written with ``--out`` that hold customer rows
    (``features.erasure.ErasureRegistry.written_files``): rewritten and checked
    wherever they are, even inside the configured input.
    """

    output_dir: Path
    score_dir: Path
    list_dir: Path
    tracking_root: Path
    input_data: tuple[Path, ...] = ()
    erasure: ErasureRegistry | None = None
    artifact_root: Path | None = None
    wait_seconds: float = 60.0
    written: tuple[Path, ...] = ()

    def registry(self) -> ErasureRegistry:
        return self.erasure if self.erasure is not None else ErasureRegistry.default()

    def roots(self) -> list[Path]:
        """The folders searched: the output folder, the MLflow root and its artifact root."""
        roots = [self.output_dir, self.tracking_root]
        if self.artifact_root is not None and not any(
            _within(self.artifact_root, root) for root in roots
        ):
            roots.append(self.artifact_root)
        return roots

    def written_files(self) -> list[Path]:
        """The written files that exist and lie outside every root (those inside are walked)."""
        roots = self.roots()
        return [
            path
            for path in self.written
            if path.is_file() and not any(_within(path, root) for root in roots)
        ]

    @cached_property
    def _written(self) -> frozenset[Path]:
        return frozenset(path.resolve() for path in self.written)

    def is_input(self, path: Path) -> bool:
        """Whether ``path`` is the shop's input data (a configured source or a simulated shop).

        A file winback wrote (``written``) is never input, even inside a configured source.
        """
        resolved = path.resolve()
        if resolved in self._written:
            return False
        if any(_within(resolved, source) for source in self.input_data):
            return True
        return any((parent / SIMULATED_SHOP_MARKER).is_file() for parent in path.parents)


def _within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or inside it."""
    resolved, folder = path.resolve(), folder.resolve()
    return resolved == folder or folder in resolved.parents


@dataclass
class ForgetReport:
    """What was rewritten, how many rows went from each store, and what still mentions them."""

    customers: int
    removed_rows: dict[str, int] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    remaining: list[Path] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems and not self.remaining


def _relative(path: Path, stores: ForgetStores) -> str:
    for root in stores.roots():
        try:
            return f"{root.name}/{path.resolve().relative_to(root.resolve()).as_posix()}"
        except ValueError:
            continue
    return str(path)


def erase_from_lists(list_dir: Path, customer_ids: Collection[str]) -> dict[str, int]:
    """Rewrite saved lists without the customers; manifests count them (``erased_rows``)."""
    removed: dict[str, int] = {}
    for list_id in list_ids(list_dir):
        folder = list_folder(list_dir, list_id)
        frame = pd.read_parquet(folder / PARQUET_NAME)
        kept, gone = erase_rows(frame, customer_ids)
        if not gone:
            continue
        publish_file(folder / PARQUET_NAME, lambda p, k=kept: k.to_parquet(p, index=False))
        publish_text(folder / CSV_NAME, list_csv(kept))
        manifest = read_manifest(list_dir, list_id)
        groups = kept["group"].astype("string") if "group" in kept.columns else pd.Series([])
        counts = manifest.to_dict()
        counts.update(
            rows=len(kept),
            treatment_rows=int((groups == "treatment").sum()),
            control_rows=int((groups == "control").sum()),
            erased_rows=int(counts.get("erased_rows") or 0) + gone,
        )
        write_manifest(ListManifest.from_dict(counts), list_dir)
        removed[list_id] = gone
    return removed


def remaining_mentions(stores: ForgetStores, customer_ids: Sequence[str]) -> list[Path]:
    """Files under the output folder (outside input data) and MLflow root naming a customer."""
    found = [path for path in stores.written_files() if mentions(path, customer_ids)]
    for root in stores.roots():
        for path in files_under(root, skip=stores.is_input):
            if mentions(path, customer_ids):
                found.append(path)
    return found


def forget_customers(customer_ids: Sequence[str], stores: ForgetStores) -> ForgetReport:
    """Remove the customers from every store (see the module docstring) and check."""
    ids = list(dict.fromkeys(str(i).strip() for i in customer_ids if str(i).strip()))
    if not ids:
        raise ValueError("no customer ids given: pass them as arguments or with --ids FILE")
    report = ForgetReport(customers=len(ids))
    registry = stores.registry()
    with registry.locked():
        erased = store.erase_customers(stores.score_dir, ids, wait_seconds=stores.wait_seconds)
        for name, rows in erased.items():
            report.removed_rows[f"scores/{name}"] = rows
        for list_id, rows in erase_from_lists(stores.list_dir, ids).items():
            report.removed_rows[f"lists/{list_id}"] = rows
        handled = {stores.score_dir.resolve(), stores.list_dir.resolve(), registry.folder.resolve()}

        def skip(path: Path) -> bool:
            resolved = path.resolve()
            return stores.is_input(path) or any(h in resolved.parents for h in handled)

        for root in stores.roots():
            for result in erase_from_tree(root, ids, skip=skip):
                name = _relative(result.path, stores)
                if result.problem:
                    report.problems.append(f"{name}: {result.problem}")
                else:
                    report.removed_rows[name] = result.rows_removed
        for result in (erase_from_file(path, ids) for path in stores.written_files()):
            if result.problem:
                report.problems.append(f"{result.path}: {result.problem}")
            else:
                report.removed_rows[str(result.path)] = result.rows_removed
        report.rewritten = sorted(report.removed_rows)
        registry.record(ids, rewritten=report.rewritten, removed_rows=report.removed_rows)
    report.remaining = remaining_mentions(stores, ids)
    return report
