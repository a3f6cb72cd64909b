"""Figure 11: the learned per-site model (detection.learning): training time and re-scoring cost.

    .venv/bin/python -m bench.learning [--quick]

Data: 1,000 simulated reviewed alerts (detection.learning.simulate: concealment-like and
browsing-like person tracks, 5 fps, 2 s before the event start to 3 s after, labelled), as
`train_detector` would read them from the database, one an hour.

Measured in a process of its own, with torch.set_num_threads(2) (TORCH_THREADS's default, the 2
cores of the development machines) and, as the baseline in the same run, 1:

  features     event_features for the 1,000 alerts (what train_detector computes before training)
  training     evaluate(): the time-ordered cross-validation (4 folds, each training on every alert
               before its test block) and the final model on all 1,000, with the default TrainConfig;
               the final model's fit alone too; median of the repeats
  gate         how many of 20 seeds (240 examples each) the deploy gate passes, on simulated signal
               and on labels that are pure noise
  re-scoring   per event, what the spooler thread adds before raising an alert: the event's
               features from its track and zones, and the model (LoadedModel.score); p50 and p95
               over 200 events, after a warm-up. The rule-only path's cost is Rescorer.rescore for
               a site without a model (it returns at once): the baseline.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from typing import Any

from bench._support import apply_env, django_env, print_result, run_child, sigterm_raises, temp_dir
from bench.common import percentile

EXAMPLES = 1000
GATE_EXAMPLES = 240
EVENTS = 200
THREADS = (2, 1)


def measure(quick: bool) -> dict[str, Any]:
    sigterm_raises()
    data_dir = temp_dir("bench-learning-")
    apply_env(django_env(database_url=f"sqlite:///{data_dir / 'db.sqlite3'}", data_dir=data_dir, process="bench"))
    import django

    django.setup()
    import torch

    from detection.inference.events import CameraRules, Event, EventPhase
    from detection.learning.evaluation import Example, evaluate, stack
    from detection.learning.features import event_features
    from detection.learning.model import TrainConfig, fit
    from detection.learning.rescoring import LoadedModel, Rescorer
    from detection.learning.simulate import ZONES, simulate_alerts
    from detection.tracking.tracks import TrackEvidence, TrackPoint

    repeats = 1 if quick else 3
    results: dict[str, Any] = {"examples": EXAMPLES, "torch": str(torch.__version__), "repeats": repeats}
    simulated = simulate_alerts(EXAMPLES, seed=1)
    started = time.perf_counter()
    examples = [Example(key=i, at=a.event_start, confirmed=a.confirmed, rule_score=a.rule_score,
                        features=event_features(track=a.track, zones=a.zones, event_type=a.event_type,
                                                rule_score=a.rule_score, event_start=a.event_start))
                for i, a in enumerate(simulated)]
    results["features_s"] = round(time.perf_counter() - started, 3)
    sequences, tabular, labels = stack(examples)
    evaluation = None
    for threads in THREADS:
        torch.set_num_threads(threads)
        fit(sequences[:64], tabular[:64], labels[:64], TrainConfig(epochs=1))  # warm-up: torch's first calls
        totals, finals = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            evaluation = evaluate(examples)
            totals.append(time.perf_counter() - started)
            started = time.perf_counter()
            fit(sequences, tabular, labels, TrainConfig())
            finals.append(time.perf_counter() - started)
        results[f"train_t{threads}_s"] = round(statistics.median(totals), 2)
        results[f"final_fit_t{threads}_s"] = round(statistics.median(finals), 2)
        print(f"   training, {threads} thread(s): {results[f'train_t{threads}_s']} s (final fit "
              f"{results[f'final_fit_t{threads}_s']} s)", flush=True)
    assert evaluation is not None and evaluation.net is not None
    report = evaluation.report
    results.update(passed=int(evaluation.passed), model_auc=report["model"]["auc"], rules_auc=report["rules"]["auc"],
                   false_alarms=report["model"]["false_alarms"],
                   suppressed=report["model"]["false_alarms_suppressed"],
                   rules_best_suppressed=report["rules"]["best"]["false_alarms_suppressed"])

    model = LoadedModel(model_id=1, site_id=1, site_name="bench", version="v1", sha256="", threshold=0.5,
                        net=evaluation.net)
    camera = CameraRules(camera_id=1, name="bench", zones=ZONES)
    events = []
    for a in simulate_alerts(EVENTS, seed=2):
        points = tuple(TrackPoint(p["t"], tuple(p["box"]), p["score"],
                                  None if p["keypoints"] is None else tuple(tuple(k) for k in p["keypoints"]))
                       for p in a.track["points"])
        events.append(Event(phase=EventPhase.STARTED, camera_id=1, camera_name="bench", zone_id=1, zone_name="Shelf",
                            event_type=a.event_type, score=a.rule_score, threshold=0.5, start=a.event_start,
                            last_high=a.event_start, end=None, clip_start=a.event_start - 2,
                            clip_end=a.event_start + 4, clip_final=True, trigger_at=a.event_start,
                            track=TrackEvidence(1, points)))
    for threads in THREADS:
        torch.set_num_threads(threads)
        for event in events[:20]:
            model.score(event, camera)
        times, feature_times = [], []
        for event in events:
            started = time.perf_counter()
            model.score(event, camera)
            times.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            event_features(track=event.track_json, zones=camera.zones, event_type=event.event_type,
                           rule_score=event.score, event_start=event.start)
            feature_times.append((time.perf_counter() - started) * 1000)
        results[f"rescore_t{threads}_p50_ms"] = round(percentile(times, 50), 3)
        results[f"rescore_t{threads}_p95_ms"] = round(percentile(times, 95), 3)
        results[f"rescore_features_t{threads}_p50_ms"] = round(percentile(feature_times, 50), 3)
    # How often the gate lets a model through: on simulated signal (it should, nearly always) and on
    # labels that are pure noise (it must not), 240 examples a seed, as a small store would have.
    torch.set_num_threads(1)
    seeds = range(100, 105 if quick else 120)
    for noise in (False, True):
        passed = 0
        for seed in seeds:
            sample = [Example(key=i, at=a.event_start, confirmed=a.confirmed, rule_score=a.rule_score,
                              features=event_features(track=a.track, zones=a.zones, event_type=a.event_type,
                                                      rule_score=a.rule_score, event_start=a.event_start))
                      for i, a in enumerate(simulate_alerts(GATE_EXAMPLES, seed=seed, noise_labels=noise))]
            passed += evaluate(sample).passed
        results[f"gate_{'noise' if noise else 'signal'}_passed"] = passed
    results["gate_seeds"] = len(seeds)
    print(f"   gate: signal {results['gate_signal_passed']}/{len(seeds)}, noise {results['gate_noise_passed']}/"
          f"{len(seeds)} seeds passed", flush=True)
    rule_only = Rescorer()  # no model for any site: the path every event takes without one
    times = []
    for event in events:
        started = time.perf_counter()
        rule_only.rescore(event)
        times.append((time.perf_counter() - started) * 1000)
    results["rule_only_p50_ms"] = round(percentile(times, 50), 4)
    return results


def run(quick: bool = False) -> dict[str, Any]:
    return run_child("learning", *(["--quick"] if quick else []), timeout=1200)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    r = results
    t2, t1 = r.get("train_t2_s", math.nan), r.get("train_t1_s", math.nan)
    return [
        {
            "figure": "11", "name": f"Training the learned model on {r.get('examples', EXAMPLES):,} simulated reviewed "
                                    "alerts (4-fold time-ordered cross-validation + final model), 2 threads",
            "measured": f"{t2:.1f} s (final model alone {r.get('final_fit_t2_s', math.nan):.1f} s; features "
                        f"{r.get('features_s', math.nan):.1f} s); gate {'passed' if r.get('passed') else 'refused'}: "
                        f"AUC {r.get('model_auc')} vs rules {r.get('rules_auc')}, {r.get('suppressed')} of "
                        f"{r.get('false_alarms')} held-out false alarms suppressed (rules at best "
                        f"{r.get('rules_best_suppressed')})",
            "baseline": f"1 thread: {t1:.1f} s (final model {r.get('final_fit_t1_s', math.nan):.1f} s)",
            "ratio": f"{t1 / t2:.1f}x" if t2 and math.isfinite(t1 / t2) else "n/a",
            "goal": "minutes, not hours, on 2 cores", "met": bool(t2 < 600) if math.isfinite(t2) else None,
        },
        {
            "figure": "11", "name": "Re-scoring one event before its alert (features from the track + model), p50 / p95",
            "measured": f"2 threads {r.get('rescore_t2_p50_ms', math.nan):.2f} / {r.get('rescore_t2_p95_ms', math.nan):.2f} "
                        f"ms (features {r.get('rescore_features_t2_p50_ms', math.nan):.2f} ms); 1 thread "
                        f"{r.get('rescore_t1_p50_ms', math.nan):.2f} / {r.get('rescore_t1_p95_ms', math.nan):.2f} ms",
            "baseline": f"rule-only path (no model at the site): {r.get('rule_only_p50_ms', math.nan) * 1000:.1f} µs",
            "ratio": "", "goal": "well under the spooler's per-alert work (a snapshot JPEG, database writes)",
            "met": None,
        },
        {
            "figure": "11", "name": f"Deploy gate over {r.get('gate_seeds', 'n')} seeds of {GATE_EXAMPLES} simulated "
                                    "reviewed alerts: models let through",
            "measured": f"signal: {r.get('gate_signal_passed')} of {r.get('gate_seeds')}",
            "baseline": f"labels that are pure noise: {r.get('gate_noise_passed')} of {r.get('gate_seeds')}",
            "ratio": "", "goal": "noise never passes", "met": r.get("gate_noise_passed") == 0
            if "gate_noise_passed" in r else None,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="measure in this process; print one JSON line")
    args = parser.parse_args()
    if args.json:
        print_result(measure(args.quick))
    else:
        results = run_child("learning", *(["--quick"] if args.quick else []), timeout=1200)
        print(json.dumps(results, indent=2))
        for row in rows(results):
            print(f"{row['name']}: {row['measured']} | baseline {row['baseline']}")


if __name__ == "__main__":
    sys.exit(main())
