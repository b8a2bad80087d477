"""Benchmark: ``winback score`` at a million customers, stage by stage.

Runs ``winback score --data DIR`` (the command's function, called in a fresh
process) and times the functions it calls by wrapping them in place (no
copy of the scoring code): loading and validating the tables, the feature
query, the customer statuses attached to the features, the value champion's
purchase summary and prediction (when one is served), each model's predictions,
the expected value, the reasons, and writing the score table. For each stage it prints wall
time, CPU time (user + sys of the process), the resident memory after it and
the peak during it (``VmHWM``, reset before each stage through
``/proc/self/clear_refs``), and at the end the whole run's wall, CPU and peak.
"self" is the time of a stage outside the stages nested in it. The run may
write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped, and a first process
imports the libraries), as an installed winback would have it.

Set up once (the shop and quick champions; the models are the demo's, trained
on a small simulated shop, which is all scoring needs)::

    uv run --frozen winback data simulate --customers 1000000 --out /tmp/shop1m
    (cd /tmp/models && uv run --frozen --project /path/to/winback winback demo --customers 3000)

Run::

    uv run --frozen python benchmarks/scoring_benchmark.py --data /tmp/shop1m \\
        --tracking-dir /tmp/models --score-dir /tmp/scores
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

#: (module, function) wrapped as stages, in the order ``winback score`` calls them
#: (those a version of the code lacks are skipped).
STAGES = (
    ("serving.scoring.models", "load_served_models"),
    ("training.tracking.model_io", "load_python_model"),
    ("winback.commands.serving", "_load_tables"),
    ("features.engines.duckdb_engine", "connect_parquet"),
    ("features.engines.duckdb_engine", "outline"),
    ("features.build", "build_feature_table_from"),
    ("features.scoring_frame", "scoring_frame_ahead"),
    ("features.scoring_frame", "_from_ahead"),
    ("features.status_features", "status_from_features"),
    ("features.scoring_frame", "_with_status"),
    ("features.scoring_frame", "_attach_status"),
    ("features.scoring_frame", "_sorted_status"),
    ("features.scoring_frame", "customer_status"),
    ("features.scoring_frame", "join_scoring_frame"),
    ("serving.scoring.value", "with_summary"),
    ("serving.scoring.table", "score_table"),
    ("serving.scoring.table", "_score_table"),
    ("serving.scoring.predict", "predict_scores"),
    ("serving.scoring.table", "expected_value"),
    ("serving.scoring.value", "predicted_value"),
    ("training.evaluation.value_baselines", "btyd_features"),
    ("serving.scoring.predict", "raw_scores"),
    ("serving.scoring.reasons", "feature_reference"),
    ("serving.scoring.reasons", "reason_texts"),
    ("serving.scoring.store", "write_score_table"),
    ("serving.scoring.lookup_files", "write_lookup_files"),
    ("serving.scoring.lookup_files", "arrow_scores"),
    ("serving.scoring.lookup_files", "write_score_file"),
    ("serving.scoring.record_file", "write_record_file"),
    ("serving.scoring.lookup_files", "aligned_features"),
    ("serving.scoring.lookup_files", "write_feature_file"),
    ("features.publish", "fsync_tree"),
    ("serving.scoring.store", "_publish_catalogue"),
)


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Start a new high-water mark (Linux: ``5`` to ``/proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


class Recorder:
    """Wall, CPU and peak memory of each wrapped call, nested calls counted apart.

    Calls on other threads than the main one (stages that run beside others) are
    marked ``thread``: their CPU is the whole process's during the call (what every
    thread used meanwhile), and their peak is not reset (the main thread's stages
    reset it), so it is the process's highest mark by their end.
    """

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._local = threading.local()

    @property
    def _stack(self) -> list[dict]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def wrap(self, name: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            stack = self._stack
            main = threading.current_thread() is threading.main_thread()
            if stack:  # the caller's peak so far, before the reset
                parent = stack[-1]
                parent["peak_mib"] = max(parent["peak_mib"], _rss_mib("VmHWM"))
            if main:
                _reset_peak()
            row = {"stage": name, "depth": len(stack), "peak_mib": 0.0, "inner_s": 0.0}
            row["thread"] = not main
            row["start"] = time.perf_counter()
            stack.append(row)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                row["wall_s"] = time.perf_counter() - t0
                row["cpu_s"] = time.process_time() - c0
                row["peak_mib"] = max(row["peak_mib"], _rss_mib("VmHWM"))
                row["rss_after_mib"] = _rss_mib("VmRSS")
                stack.pop()
                if stack:
                    parent = stack[-1]
                    parent["peak_mib"] = max(parent["peak_mib"], row["peak_mib"])
                    parent["inner_s"] += row["wall_s"]
                self.rows.append(row)

        return timed


def install(recorder: Recorder) -> None:
    """Wrap every stage function where it is defined and where it was imported."""
    for module_name, function_name in STAGES:
        module = importlib.import_module(module_name)
        original = getattr(module, function_name, None)
        if original is None:  # a stage of another version of the code
            continue
        wrapped = recorder.wrap(function_name, original)
        for loaded in list(sys.modules.values()):
            if getattr(loaded, function_name, None) is original:
                setattr(loaded, function_name, wrapped)


def score_once(data: Path, tracking_dir: Path, score_dir: Path, explain_top: int) -> dict:
    """Run ``winback score --data DATA`` once, in this process; the stage rows and totals."""
    os.chdir(tracking_dir)  # the demo's winback.toml-less defaults: ./mlruns
    t0 = time.perf_counter()
    import features.training_table  # noqa: F401
    import serving.scoring.table  # noqa: F401
    from winback.commands import serving

    import_s = time.perf_counter() - t0
    recorder = Recorder()
    install(recorder)
    _reset_peak()
    t1, c1 = time.perf_counter(), time.process_time()
    serving.score(
        as_of=None,
        data=data,
        mapping=None,
        score_dir=score_dir,
        explain_top=explain_top,
        horizon_days=serving._DEFAULT.horizon_days,
        model_versions=None,
        engine="duckdb",
        spark_master=None,
        wait=0.0,
    )
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    peak = max([_rss_mib("VmHWM"), *(r["peak_mib"] for r in recorder.rows)])
    return {
        "rows": recorder.rows,
        "imports_s": import_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mib": peak,
    }


def print_report(report: dict) -> None:
    """The stage table, then the totals."""
    print(f"{'stage':44} {'wall s':>7} {'self s':>7} {'cpu s':>7} {'peak MiB':>9} {'RSS after':>9}")
    order = sorted(report["rows"], key=lambda r: r.get("start", 0))
    for row in order:
        name = "  " * row["depth"] + row["stage"] + (" [thread]" if row.get("thread") else "")
        print(
            f"{name:44} {row['wall_s']:7.2f} {row['wall_s'] - row['inner_s']:7.2f}"
            f" {row['cpu_s']:7.2f} {row['peak_mib']:9.0f} {row['rss_after_mib']:9.0f}"
        )
    print(
        f"\nwinback score: {report['wall_s']:.1f} s wall, {report['cpu_s']:.1f} CPU s,"
        f" peak {report['peak_mib']:,.0f} MiB (imports {report['imports_s']:.1f} s, not counted)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a `winback data simulate` folder")
    parser.add_argument("--tracking-dir", type=Path, required=True, help="folder holding mlruns/")
    parser.add_argument("--score-dir", type=Path, default=Path("/tmp/winback-bench-scores"))
    parser.add_argument("--explain-top", type=int, default=1000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report = score_once(
            args.data.resolve(), args.tracking_dir.resolve(), args.score_dir, args.explain_top
        )
        print("\nREPORT " + json.dumps(report))
        return
    print(f"load: {os.getloadavg()}  cores: {os.cpu_count()}", flush=True)
    command = [sys.executable, __file__, "--child", *sys.argv[1:]]
    root = Path(__file__).resolve().parents[1]
    # Bytecode as an installed winback has it: with PYTHONDONTWRITEBYTECODE every run
    # compiles mlflow, scikit-learn and LightGBM again (about 20 CPU s of "loading models").
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(root)
    warm = "import mlflow, lightgbm, sklearn, serving.scoring.models, winback.commands.serving"
    subprocess.run([sys.executable, "-c", warm], cwd=root, env=env, check=True)
    proc = subprocess.run(command, capture_output=True, text=True, cwd=root, env=env)
    if proc.returncode != 0:
        sys.exit(f"scoring failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("REPORT ")][-1]
    print("\n".join(x for x in proc.stdout.splitlines() if x.startswith("scored ")))
    print_report(json.loads(line.removeprefix("REPORT ")))
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
