"""Rows per second of ``rs-plugin certify`` on digits: the local executor against Ray workers, side by side.

Both runs certify the same examples with the same seed; the script checks that they wrote the same rows
(the ``time`` column aside). Ray's own start-up is reported apart; actor start-up is included.

    python benchmarks/ray_executor.py [--examples 100] [--n 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from rs_plugin.executors import Executor
from rs_plugin.runs import DatasetTask, run


def rows_per_second(task: DatasetTask, out: str, examples: int, executor: Executor | None = None) -> float:
    start = time.perf_counter()
    run(task, out, max_examples=examples, executor=executor, progress=False)
    return examples / (time.perf_counter() - start)


def rows(path: str) -> list[list[str]]:
    with open(path) as file:
        return [line.split("\t")[:-1] for line in file.read().splitlines()[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import ray

    from rs_plugin.adapters.ray import RayExecutor

    task = DatasetTask("digits", 0.25, n=args.n)
    task.prepare()  # trains and caches the digits model outside the timings
    with tempfile.TemporaryDirectory() as folder:
        local, remote = os.path.join(folder, "local.tsv"), os.path.join(folder, "ray.tsv")
        local_rate = rows_per_second(task, local, args.examples)
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="warning")
        startup = time.perf_counter() - start
        ray_rate = rows_per_second(task, remote, args.examples, RayExecutor(workers=args.workers))
        ray.shutdown()
        print(f"digits, n={args.n}, {args.examples} examples, {os.cpu_count()} CPUs")
        print(f"local:            {local_rate:6.2f} rows/s")
        print(f"ray, {args.workers} workers:  {ray_rate:6.2f} rows/s (ratio {ray_rate / local_rate:.2f}; "
              f"Ray start-up {startup:.1f} s not included)")
        print(f"identical rows (time aside): {rows(local) == rows(remote)}")


if __name__ == "__main__":
    main()
