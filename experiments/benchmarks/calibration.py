"""Benchmark (issue 16): do the prediction intervals cover what they claim, on this host?

Latency (``nas profile``, through ``nas.profiling.device.profile_device``, device and settings of
``experiments/quickstart.toml``'s ``[profile]``):

* ``latency.tiny_mbv3_demo``: the quickstart's profile of ``tiny_mbv3``;
* ``latency.ofa_mbv3_160``: ``ofa_mbv3`` restricted to 160 px (``--ofa-samples/--ofa-coverage/--ofa-repeats``).

For each, per predictor (kernel_level, arch_level): the nominal coverage of its interval, the share of
held-out subnets inside it (``held_out_coverage``), of their same-run raw re-measurements
(``remeasured_coverage``), its median relative width, the held-out ±10% share; the re-measurement ceiling.
``later``: at least ``--later-min`` minutes after each profile finished, its held-out subnets are
measured again standalone and raw (a measured model with the profile's backend, threads, warm-up and
repeats: a user's timer), checked
against the default predictor's interval (``LatencyModel.predict``); and beside the profile's
reference subnet, as the pipeline's front check does (``nas.profiling.remeasure``), whose latency at
the profile run's machine speed is checked against the model-only interval (drift left out).

Accuracy (``accuracy_ensemble``): a tiny_mbv3 supernet trained with the quickstart's ``[train]`` (or
``--checkpoint DIR``, a ``nas train`` folder, copied so its eval cache is neither read nor written);
``--acc-subnets`` distinct random subnets evaluated (val top-1, BN recalibrated), split 50/25/25 into
fit / calibration / test; an ``AccuracyEnsemble`` as linas builds it (one-hot features, 3 members) fitted
on fit (and on its first 30 and 50 subnets, what linas fits on early), then on test
``predictors.calibration.interval_report`` raw and after split-conformal scaling (``scale`` from the
calibration split). ``targets``: booleans beside the figures (never asserts).

Prints one JSON document on stdout (progress on stderr); ``--out FILE`` writes it there too.
The full run takes about 11 minutes on 2 idle CPU cores (~2.5 of them training), 20-25 minutes on a busy
shared host (``--checkpoint`` skips the training; ``--train-threads 1`` is faster where other jobs run):

    python experiments/benchmarks/calibration.py [--note "what else runs"] [--out FILE]
    # smoke test (~1.5 min): --demo-samples 20 --demo-coverage 0 --ofa-samples 12 --ofa-coverage 0
    #   --ofa-repeats 5 --later-min 0.2 --acc-subnets 40 --checkpoint /work/runs/tiny
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "experiments" / "quickstart.toml"
SLACK = 0.05  # empirical coverage may fall this far below nominal
OFA_MAX_REL_WIDTH = 0.25
DEMO_CEILING = 0.95
DEMO_WITHIN_10PCT = 0.90
LINAS_SIZES = (30, 50)


def log(message: str) -> None:
    print(f"[calibration] {message}", file=sys.stderr, flush=True)


def r(x, digits: int = 4):
    return None if x is None else round(float(x), digits)


def machine_info(note: str, load_start) -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "load_average_start": [round(v, 2) for v in load_start],
            "load_average_end": [round(v, 2) for v in os.getloadavg()], "other_processes_note": note}


def shown_path(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def ofa_160():
    """``search_spaces.mobilenet_v3.ofa_mbv3()`` with ``resolutions=(160,)``, every other argument its own."""
    from search_spaces.mobilenet_v3 import MobileNetV3Space, ofa_mbv3

    full = ofa_mbv3()
    return MobileNetV3Space(name=full.name, stages=full.stages, kernel_sizes=full.kernel_sizes,
                            expand_ratios=full.expand_ratios, depths=full.depths, resolutions=(160,),
                            stem_width=full.stem_width, first_block_width=full.first_block_width,
                            final_expand_width=full.final_expand_width, last_channel=full.last_channel,
                            num_classes=full.num_classes, in_channels=full.in_channels, version=full.version)


# ------------------------------------------------------------------------------------------- latency
def run_profile(space, device: str, settings, folder: Path) -> dict:
    """Profile ``space`` into ``folder``; the report's interval figures, and when it finished."""
    from nas.profiling.device import profile_device

    log(f"profiling {space.name} ({len(space.resolutions)} resolution(s)) on {device}: {settings}")
    started = time.perf_counter()
    report = profile_device(space, device, folder, settings=settings, progress=True).to_json()
    wall = time.perf_counter() - started
    predictors = {}
    for name in ("kernel_level", "arch_level"):
        entry, held = (report.get("intervals") or {}).get(name), report["held_out"][name]
        row = {"within_10pct": r(held["within_10pct"]), "spearman": r(held["spearman"]), "rmse_ms": r(held["rmse"], 5)}
        if entry is None:
            row["interval"] = None  # too few fit subnets for the coverage
        else:
            row.update({"nominal": entry["coverage"], "held_out_coverage": r(entry["held_out_coverage"]),
                        "remeasured_coverage": r(entry["remeasured_coverage"]),
                        "median_rel_width": r(entry["median_rel_width"]), "log_q": r(entry["log_q"]),
                        "model_log_q": r(entry["model_log_q"]), "drift_log_q": r(entry["drift_log_q"]),
                        "n_calibration": entry["n_calibration"], "n_held_out": entry["n_held_out"]})
        predictors[name] = row
    return {"space": space.name, "resolutions": list(space.resolutions), "device": report["device"],
            "backend": report["backend"], "threads": report["threads"],
            "settings": {k: v for k, v in dataclasses.asdict(settings).items() if v is not None},
            "samples": report["samples"], "n_fit": report["n_fit"], "n_held_out": report["n_held_out"],
            "layer_workloads": report["layer_workloads"], "default_predictor": report["default_predictor"],
            "predictors": predictors,
            "repeatability": {k: r(v) for k, v in report["repeatability"].items()},
            "latency_ms": {k: r(v, 5) for k, v in report["latency_ms"].items()},
            "median_iqr_pct": r(report["median_iqr_pct"], 2), "drift": report.get("drift"),
            "profile_wall_s": report["wall_s"], "wall_s": round(wall, 1), "_finished_at": time.time()}


def standalone_measurer(space, report, device: str):
    """The profile's backend/threads/warmup/repeats on a seed-0 supernet: the pipeline front check's model."""
    from hw_profiles import get_profile
    from hw_profiles.tvm_measured import measured_model_for
    from nas.profiling.builds import network_builder
    from supernets import create_supernet

    profile = get_profile(device)
    spec = dataclasses.replace(profile.spec, backend=report.backend, threads=report.threads)
    supernet = create_supernet(space.name, num_classes=space.num_classes, in_channels=space.in_channels, seed=0)
    return measured_model_for(dataclasses.replace(profile, spec=spec), build=network_builder(supernet, space),
                              input_shape=lambda a: (1, *space.input_shape(a)), warmup=report.warmup,
                              repeats=report.repeats, seed=report.seed)


def remeasure_later(space, folder: Path, device: str, finished_at: float, later_min: float) -> dict:
    """The held-out subnets measured again >= ``later_min`` minutes after the profile: standalone and raw
    (as a user's timer), and beside the profile's reference as the pipeline's front check does
    (``nas.profiling.remeasure``: raw, and at the profile run's machine speed against the model-only interval)."""
    from hw_profiles import get_profile
    from nas.profiling.latency_model import LatencyModel
    from nas.profiling.remeasure import model_interval, remeasurer

    wait = later_min * 60 - (time.time() - finished_at)
    if wait > 0:
        log(f"waiting {wait / 60:.1f} min until the {space.name} profile is {later_min:g} min old")
        time.sleep(wait)
    model = LatencyModel.load(folder, space=space)
    rows = [json.loads(line) for line in (folder / "measurements.jsonl").read_text().splitlines() if line.strip()]
    archs = [space.parse(row["arch"]) for row in rows if row["split"] == "held_out"]
    predicted = model.predict(archs)
    measurer = standalone_measurer(space, model.report, device)
    beside = remeasurer(model, get_profile(device), warmup=model.report.warmup, repeats=model.report.repeats)
    start_min = (time.time() - finished_at) / 60
    log(f"re-measuring {len(archs)} held-out {space.name} subnets {start_min:.1f} min after the profile")
    subnets = []
    for i, (arch, p) in enumerate(zip(archs, predicted)):
        value = measurer.measure(arch)["latency_ms"].value
        again = beside(arch) if beside else None  # None: a profile without drift correction (no reference)
        if (i + 1) % 5 == 0 or i + 1 == len(archs):
            log(f"re-measured {i + 1}/{len(archs)}")
        lo, hi = p.interval if p.interval else (None, None)
        own = model_interval(model, p.value)
        at_speed = again.at_run_speed.value if again else None
        subnets.append({"arch_id": arch.arch_id, "predicted_ms": r(p.value, 5), "lo_ms": r(lo, 5), "hi_ms": r(hi, 5),
                        "measured_ms": r(value, 5), "measured_over_predicted": r(value / p.value),
                        "inside": None if lo is None else bool(lo <= value <= hi),
                        "paired_raw_ms": r(again.measured.value, 5) if again else None,
                        "at_run_speed_ms": r(at_speed, 5), "at_run_speed_over_predicted": r(at_speed / p.value)
                        if again else None, "inside_model_interval_at_run_speed": None if own is None or not again
                        else bool(own[0] <= at_speed <= own[1])})
    return {"predictor": model.default, "nominal": predicted[0].coverage if predicted else None, "n": len(subnets),
            **_later_shares(subnets, predicted),
            "minutes_since_profile": {"start": round(start_min, 2), "end": round((time.time() - finished_at) / 60, 2)},
            "measurer": {"backend": measurer.backend, "threads": measurer.threads, "warmup": measurer.warmup,
                         "repeats": measurer.repeats},
            "subnets": subnets}


def _later_shares(subnets: list, predicted: list) -> dict:
    """Coverage and ±10% shares of the later re-measurements (None where nothing to count)."""
    def share(key, test=bool):
        values = [test(s[key]) for s in subnets if s[key] is not None]
        return r(np.mean(values)) if values else None

    widths = [(p.interval[1] - p.interval[0]) / p.value for p in predicted if p.interval and p.value > 0]
    return {"coverage": share("inside"), "median_rel_width": r(np.median(widths)) if widths else None,
            "within_10pct": share("measured_over_predicted", lambda x: abs(x - 1) <= 0.1),
            "at_run_speed_model_coverage": share("inside_model_interval_at_run_speed"),
            "at_run_speed_within_10pct": share("at_run_speed_over_predicted", lambda x: abs(x - 1) <= 0.1),
            "median_measured_over_predicted": r(np.median([s["measured_over_predicted"] for s in subnets]))
            if subnets else None}


# ------------------------------------------------------------------------------------------ accuracy
@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op thread count set to ``threads`` inside (None: left as it is)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def checkpoint_folder(args, train_table: dict, work: Path) -> tuple[Path, dict]:
    """A trained tiny supernet's folder (a copy of ``--checkpoint``'s, or trained now) and how it came."""
    from nas.training.config import TrainConfig
    from nas.training.train import train
    from supernets.checkpoint import CHECKPOINT_NAME, load_checkpoint

    folder = work / "train"
    if args.checkpoint:
        folder.mkdir(parents=True)
        shutil.copy2(Path(args.checkpoint) / CHECKPOINT_NAME, folder / CHECKPOINT_NAME)
        meta = load_checkpoint(folder)["meta"]
        return folder, {"source": f"--checkpoint {args.checkpoint}", "epochs_run": meta["epoch"] + 1,
                        "config": {k: meta["config"][k] for k in ("space", "data", "strategy", "epochs", "seed")},
                        "val_top1": meta["val"], "wall_s": 0.0}
    config = TrainConfig.from_dict(train_table, source=f"{args.config} [train]")
    log(f"training {config.space} on {config.data}, {config.epochs} epochs ({config.strategy})")
    started = time.perf_counter()
    with torch_threads(args.train_threads):
        summary = train(config, out=folder, progress=True)
    return folder, {"source": f"trained now with [train] of {shown_path(args.config)}",
                    "epochs_run": summary.epochs_run,
                    "config": dict(train_table), "val_top1": {k: v.top1 for k, v in summary.val.items()},
                    "wall_s": round(time.perf_counter() - started, 1)}


def evaluate_subnets(folder: Path, n: int, seed: int, threads: int):
    """``n`` distinct random subnets of the checkpoint's space and their val top-1 (BN recalibrated), with
    ``threads`` torch threads (on a shared 2-core host 2 threads ran 5-20x slower than 1: OpenMP barriers)."""
    from nas.training.evaluation import CheckpointEvaluator

    with torch_threads(threads):
        return _evaluate(CheckpointEvaluator(folder), n, seed)


def _evaluate(evaluator, n: int, seed: int):
    space, rng, archs = evaluator.space, np.random.default_rng(seed), {}
    for _ in range(50 * n):
        arch = space.sample(rng)
        archs.setdefault(arch.arch_id, arch)
        if len(archs) == n:
            break
    archs = list(archs.values())
    started, y = time.perf_counter(), []
    for i, arch in enumerate(archs):
        y.append(evaluator(arch).top1)
        if (i + 1) % 20 == 0 or i + 1 == len(archs):
            log(f"evaluated {i + 1}/{len(archs)} subnets ({(time.perf_counter() - started) / (i + 1):.2f} s each)")
    return space, archs, np.array(y), time.perf_counter() - started


def calibration(X, y, fit, cal, test, coverage: float, seed: int) -> dict:
    """Ensemble fitted on ``fit``: raw interval report on ``test``, and after the conformal ``scale`` of ``cal``."""
    from predictors.accuracy import AccuracyEnsemble
    from predictors.calibration import interval_report

    model = AccuracyEnsemble(seed=seed, n_members=3).fit(X[fit], y[fit])  # as linas builds it
    mean, var = model.predict_dist(X[test])
    raw = interval_report(mean, var, y[test], coverage)
    scale = interval_report(*model.predict_dist(X[cal]), y[cal], coverage)["scale"]
    out = {"n_fit": len(fit), "n_calibration": len(cal), "n_test": len(test),
           "raw": {"nominal": coverage, "empirical": r(raw["empirical"]), "kendall_tau": r(raw["kendall_tau"]),
                   "median_width": r(raw["median_width"], 5), "test_scale": r(raw["scale"])},
           "conformal": None}
    if scale is not None:
        sd = np.sqrt(var)
        inside = np.abs(y[test] - mean) <= scale * raw["z"] * sd
        out["conformal"] = {"nominal": coverage, "scale": r(scale), "empirical": r(inside.mean()),
                            "median_width": r(np.median(2 * scale * raw["z"] * sd), 5)}
    return out


def accuracy_section(args, train_table: dict, work: Path) -> dict:
    from predictors.features import one_hot_codes

    started = time.perf_counter()
    folder, trained = checkpoint_folder(args, train_table, work)
    space, archs, y, eval_s = evaluate_subnets(folder, args.acc_subnets, args.seed, args.eval_threads)
    X = one_hot_codes(space.cardinalities, np.vstack([space.encode(a) for a in archs]))
    order = np.random.default_rng(args.seed + 1).permutation(len(y))
    n_fit, n_cal = len(y) // 2, len(y) // 4
    fit, cal, test = order[:n_fit], order[n_fit:n_fit + n_cal], order[n_fit + n_cal:]
    fits = {"all_fit": calibration(X, y, fit, cal, test, args.coverage, args.seed)}
    for size in LINAS_SIZES:
        fits[f"first_{size}"] = (calibration(X, y, fit[:size], cal, test, args.coverage, args.seed) if size < n_fit
                                 else {"skipped": f"the fit split has only {n_fit} subnets"})
    return {"space": space.name, "supernet": trained, "n_subnets": len(y),
            "top1": {"min": r(y.min()), "median": r(np.median(y)), "max": r(y.max()), "std": r(y.std(), 5)},
            "eval_s_per_subnet": round(eval_s / len(y), 2), "eval_torch_threads": args.eval_threads,
            "predictor": "AccuracyEnsemble(n_members=3) on one-hot codes, as linas fits it",
            "fits": fits, "wall_s": round(time.perf_counter() - started, 1)}


# ------------------------------------------------------------------------------------------- targets
def covers(empirical, nominal) -> bool | None:
    return None if empirical is None or nominal is None else bool(empirical >= nominal - SLACK)


def targets(latency: dict, accuracy: dict) -> dict:
    out = {"coverage_slack": SLACK}
    for key, section in latency.items():
        row = {}
        for name, p in section["predictors"].items():
            for which in ("held_out_coverage", "remeasured_coverage"):
                row[f"{name}.{which}"] = covers(p.get(which), p.get("nominal"))
        later = section.get("later") or {}
        row["later.coverage"] = covers(later.get("coverage"), later.get("nominal"))
        row["later.at_run_speed_model_coverage"] = covers(later.get("at_run_speed_model_coverage"), later.get("nominal"))
        out[key] = row
    ofa = latency["ofa_mbv3_160"]["predictors"]
    out["ofa_mbv3_160"].update({f"{n}.median_rel_width<={OFA_MAX_REL_WIDTH}": None if p.get("median_rel_width") is None
                                else bool(p["median_rel_width"] <= OFA_MAX_REL_WIDTH) for n, p in ofa.items()})
    demo = latency["tiny_mbv3_demo"]
    out["tiny_mbv3_demo"][f"ceiling>={DEMO_CEILING}"] = bool(demo["repeatability"]["within_10pct"] >= DEMO_CEILING)
    best = demo["predictors"][demo["default_predictor"]]["within_10pct"]
    out["tiny_mbv3_demo"][f"default.within_10pct>={DEMO_WITHIN_10PCT}"] = bool(best >= DEMO_WITHIN_10PCT)
    out["accuracy_ensemble"] = {
        f"{fit}.{kind}": covers((res[kind] or {}).get("empirical"), (res[kind] or {}).get("nominal"))
        for fit, res in accuracy["fits"].items() if "raw" in res for kind in ("raw", "conformal")}
    return out


# ---------------------------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=QUICKSTART, help="its [profile] and [train] are used")
    parser.add_argument("--demo-samples", type=int, help="override [profile] samples (smoke tests only)")
    parser.add_argument("--demo-coverage", type=int, help="override [profile] coverage (smoke tests only)")
    parser.add_argument("--ofa-samples", type=int, default=100)
    parser.add_argument("--ofa-coverage", type=int, default=100)
    parser.add_argument("--ofa-repeats", type=int, default=10)
    parser.add_argument("--later-min", type=float, default=5.0, help="minutes after each profile to re-measure")
    parser.add_argument("--acc-subnets", type=int, default=240)
    parser.add_argument("--checkpoint", help="a `nas train` folder to use instead of training (copied)")
    parser.add_argument("--eval-threads", type=int, default=1, help="torch threads of the accuracy evaluation")
    parser.add_argument("--train-threads", type=int, help="torch threads of training (default: torch's, as nas run)")
    parser.add_argument("--coverage", type=float, default=0.9, help="nominal coverage of the accuracy intervals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="what else runs on this machine (recorded as is)")
    parser.add_argument("--work", type=Path, help="keep the profiles and the supernet here (new folder)")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    return parser.parse_args()


def run(args, work: Path) -> dict:
    from nas.profiling.device import ProfileSettings
    from search_spaces import get_space

    tables = tomllib.loads(args.config.read_text(encoding="utf-8"))
    profile_table = dict(tables["profile"])
    device = profile_table.pop("device", "host-cpu")
    overrides = {"samples": args.demo_samples, "coverage": args.demo_coverage}  # smoke tests only
    demo_settings = ProfileSettings(**{**profile_table, **{k: v for k, v in overrides.items() if v is not None}})
    ofa_settings = dataclasses.replace(demo_settings, samples=args.ofa_samples, coverage=args.ofa_coverage,
                                       repeats=args.ofa_repeats, seed=args.seed)
    spaces = {"tiny_mbv3_demo": get_space(tables["train"]["space"]), "ofa_mbv3_160": ofa_160()}
    latency = {"tiny_mbv3_demo": run_profile(spaces["tiny_mbv3_demo"], device, demo_settings, work / "tiny"),
               "ofa_mbv3_160": run_profile(spaces["ofa_mbv3_160"], device, ofa_settings, work / "ofa160")}
    accuracy = accuracy_section(args, tables["train"], work)
    for key, folder in (("tiny_mbv3_demo", "tiny"), ("ofa_mbv3_160", "ofa160")):
        section = latency[key]
        section["later"] = remeasure_later(spaces[key], work / folder, device, section.pop("_finished_at"),
                                           args.later_min)
    return {"latency": latency, "accuracy_ensemble": accuracy, "targets": targets(latency, accuracy)}


def main() -> None:
    args = parse_args()
    load_start, started = os.getloadavg(), time.perf_counter()
    if args.work is not None:
        args.work.mkdir(parents=True)  # refuses an existing folder: profiles are written new
        body = run(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="hwnas-calibration-") as tmp:
            body = run(args, Path(tmp))
    result = {"benchmark": "calibration", "issue": 16, **body,
              "targets_meaning": {"coverage": f"empirical >= nominal - {SLACK}",
                                  "ofa_median_rel_width": f"<= {OFA_MAX_REL_WIDTH}",
                                  "demo_ceiling": f"repeatability.within_10pct >= {DEMO_CEILING}",
                                  "demo_within_10pct": f"default predictor's held-out ±10% >= {DEMO_WITHIN_10PCT}"},
              "settings": {k: shown_path(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "machine": machine_info(args.note, load_start), "wall_s": round(time.perf_counter() - started, 1)}
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
