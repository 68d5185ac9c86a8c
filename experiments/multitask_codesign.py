"""Multi-task co-design (NASAIC-style) on this machine: two tasks, two networks, one zcu104.

Task ``mnist`` (tiny_mbv3 on mnist-mini) and task ``digits`` (tiny_mbv3 on scikit-learn's digits)
each get a network and a sub-accelerator of one XCZU7EV; their DSP and BRAM sums must fit the device.
Objectives: both accuracies (measured, each from its own checkpoint), the makespan (the slower
sub-accelerator's latency) and the energy (their sum), both estimated (``nas.jobs.multitask``).

    nas train experiments/train_tiny_mnist.toml --out runs/tiny
    nas train experiments/train_tiny_digits.toml --out runs/tiny-digits
    python experiments/multitask_codesign.py --mnist runs/tiny --digits runs/tiny-digits [--budget 40]

Prints the front (each task's network id, accelerator and DSP) and the job's storage.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

SPACE = "tasks(mnist=tiny_mbv3+hw(zcu104);digits=tiny_mbv3+hw(zcu104))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, required=True, help="a `nas train` folder of tiny_mbv3 on mnist-mini")
    parser.add_argument("--digits", type=Path, required=True, help="a `nas train` folder of tiny_mbv3 on digits")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algorithm", default="nsga2")
    parser.add_argument("--storage", help="job store URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    import nas
    from nas.jobs.multitask import multitask_objectives
    from nas.jobs.objectives import MetricCatalog
    from hw_profiles.profile_toml import short_template

    space = nas.get_space(SPACE)
    objectives = multitask_objectives(space, {"mnist": args.mnist, "digits": args.digits})
    with tempfile.TemporaryDirectory(prefix="multitask-") as tmp:
        storage = args.storage or f"sqlite:///{Path(tmp) / 'multitask.db'}"
        result = nas.search(space, objectives, algorithm=args.algorithm, budget=args.budget, seed=args.seed,
                            storage=storage, job="multitask", catalog=MetricCatalog(space))
        front = result.front_records()
        print(f"job multitask: {len(result.records())} trials, {len(front)} on the front ({space.name})")
        print(f"{'trial':>5}  {'acc_mnist':>9}  {'acc_digits':>10}  {'makespan_ms':>11}  {'energy_mj':>9}  "
              f"{'dsp':>5}  mnist accelerator / digits accelerator")
        for r in sorted(front, key=lambda r: r.metrics["makespan_ms"].value):
            arch = space.parse(dict(r.arch))
            labels = [short_template(space.tasks[t].template(space.part(arch, t))) for t in space.tasks]
            m = r.metrics
            print(f"{r.number:>5}  {m['acc_mnist'].value:>9.4f}  {m['acc_digits'].value:>10.4f}  "
                  f"{m['makespan_ms'].value:>11.4f}  {m['energy_mj'].value:>9.4f}  "
                  f"{int(m['tasks_dsp'].value) if 'tasks_dsp' in m else '-'!s:>5}  {labels[0]} / {labels[1]}")


if __name__ == "__main__":
    main()
