"""Run the benchmarks; write bench/results.json and the table in bench/RESULTS.md.

    .venv/bin/python -m bench [--quick] [--only NAME ...]

Every benchmark module in bench/ has `run(quick) -> dict` (flat figures, each measured with its
baseline in the same run) and `rows(results) -> list[dict]` (its lines of the table). A module
that is not there yet is skipped; one that fails is recorded as an error and the others go on,
and the command then exits non-zero. With --only, the other figures already in results.json are
kept (each with the date and load of its own run).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_JSON = BENCH_DIR / "results.json"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
# Module name and figure number, in table order.
MODULES = {
    "ring_memory": "1",
    "clip_build": "2",
    "capture_cpu": "3",
    "capacity": "4",
    "person_capacity": "4p",
    "latency": "5",
    "person_latency": "5p",
    "dashboard": "6",
    "detector_throughput": "7",
    "person_models": "7p",
    "live_updates": "8",
    "live_wall": "9",
    "stats_page": "10",
    "learning": "11",
}
COLUMNS = ("#", "Figure", "Measured", "Baseline (same run)", "Ratio", "Goal", "Met")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("torch", "av", "numpy", "opencv-python-headless", "Django"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"cores": os.cpu_count(), "cpu": cpu, "platform": platform.platform(), "python": platform.python_version(),
            **versions, "date": now(), "load_average": [round(v, 2) for v in os.getloadavg()]}


def module_present(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


def run_module(name: str, quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(figures, run info) of one benchmark; a failure becomes {"error": ...}."""
    info: dict[str, Any] = {"date": now(), "quick": quick, "load_before": load_average()}
    started = time.monotonic()
    print(f"== bench.{name} (figure {MODULES[name]}){' --quick' if quick else ''}", flush=True)
    try:
        figures = dict(importlib.import_module(f"bench.{name}").run(quick=quick))
    except Exception as exc:  # the runner's loop top: record it, go on with the other benchmarks
        traceback.print_exc()
        figures = {"error": f"{type(exc).__name__}: {exc}"}
    info.update(seconds=round(time.monotonic() - started, 1), load_after=load_average())
    print(f"   {'failed' if 'error' in figures else 'done'} in {info['seconds']:g} s "
          f"(load {info['load_before']} -> {info['load_after']})", flush=True)
    return figures, info


def table_rows(name: str, figures: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    number = MODULES.get(name, "?")
    if "error" in figures:
        return [{"figure": number, "name": f"{name}: FAILED", "measured": figures["error"], "met": False}]
    if not module_present(name):
        return [{"figure": number, "name": f"{name}: results kept, bench.{name} is gone", "measured": "see results.json"}]
    try:
        rows = importlib.import_module(f"bench.{name}").rows(figures)
    except Exception as exc:
        return [{"figure": number, "name": f"{name}: rows() failed", "measured": f"{type(exc).__name__}: {exc}",
                 "met": False}]
    if quick:
        rows = [{**row, "name": f"{row.get('name', name)} [quick]"} for row in rows]
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")

    met = {True: "yes", False: "**no**", None: "-"}
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in rows:
        values = (row.get("figure"), row.get("name"), row.get("measured"), row.get("baseline", ""),
                  row.get("ratio", ""), row.get("goal", ""), met.get(row.get("met")))
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines)


def render(results: dict[str, Any], command: str) -> tuple[str, str]:
    """(the Markdown file, the table alone)."""
    machine = results["machine"]
    runs = machine.get("runs", {})
    order = [name for name in MODULES if name in results["figures"]]
    order += [name for name in results["figures"] if name not in MODULES]
    rows = [row for name in order
            for row in table_rows(name, results["figures"][name], bool(runs.get(name, {}).get("quick")))]
    table = markdown_table(rows)
    measured = "\n".join(
        f"- `{name}`: {runs[name]['date']}, {runs[name]['seconds']:g} s, load average "
        f"{runs[name]['load_before']} -> {runs[name]['load_after']}{' (quick)' if runs[name].get('quick') else ''}"
        for name in order if name in runs
    )
    text = (
        "# Benchmark results\n\n"
        f"Regenerated by `{command}` on {machine['date']}. Raw figures: `bench/results.json`.\n\n"
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['platform']}, Python {machine['python']}, "
        f"torch {machine['torch']}, PyAV {machine['av']}. The machine is shared: each figure and its baseline "
        "come from the same run, so ratios are steadier than absolute times.\n\n"
        f"{table}\n\nWhen each figure was measured:\n\n{measured}\n"
    )
    return text, table


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def previous_results() -> dict[str, Any]:
    if not RESULTS_JSON.exists():
        return {"machine": {}, "figures": {}}
    try:
        results = json.loads(RESULTS_JSON.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"warning: {RESULTS_JSON} is unreadable ({exc}); starting a new one", file=sys.stderr)
        return {"machine": {}, "figures": {}}
    return results if isinstance(results, dict) else {"machine": {}, "figures": {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter runs (noisier figures)")
    parser.add_argument("--only", nargs="+", choices=list(MODULES), metavar="NAME",
                        help=f"run only these benchmarks and keep the others' results: {', '.join(MODULES)}")
    args = parser.parse_args(argv)
    command = "python -m bench" + (" --quick" if args.quick else "") + (
        " --only " + " ".join(args.only) if args.only else "")

    machine = machine_info()
    figures: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Any]] = {}
    failed = []
    for name in args.only or list(MODULES):
        if not module_present(name):
            print(f"skipped: bench.{name} not present", flush=True)
            continue
        figures[name], runs[name] = run_module(name, args.quick)
        if "error" in figures[name]:
            failed.append(name)

    # Read the old results only now: another --only run may have written its figures meanwhile.
    results = previous_results() if args.only else {"machine": {}, "figures": {}}
    results["figures"] = {**results.get("figures", {}), **figures}
    machine["runs"] = {**results.get("machine", {}).get("runs", {}), **runs}
    machine["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    results["machine"] = machine
    write_atomic(RESULTS_JSON, json.dumps(results, indent=2, sort_keys=False) + "\n")
    text, table = render(results, command)
    write_atomic(RESULTS_MD, text)
    print(f"\n{table}\n\nwrote {RESULTS_JSON} and {RESULTS_MD}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
