"""Does ``evdet-quickstart`` give a detector that works on recordings it never saw, within its time budget?

Run: ``python benchmarks/check_quickstart.py OUT_DIR [--seed 0] [--num-test 24] [-- QUICKSTART_OPTIONS]``.

1. ``evdet-quickstart OUT_DIR/quickstart --seed SEED`` (a child process; its wall time and the CPU time
   of it and its workers, ``resource.getrusage(RUSAGE_CHILDREN)``, are measured: on a shared machine the
   CPU time is the figure that does not depend on the other load);
2. a test split of ``--num-test`` tiny recordings simulated with another seed (``--test-seed``, default
   ``SEED + 1000``) into ``OUT_DIR/test_data`` (``evdet-make-synthetic``);
3. ``evdet-detect`` of the quickstart's last checkpoint on the test ``.dat`` recordings, score threshold
   0.01 (COCO AP integrates over all scores) into ``OUT_DIR/test_detections``;
4. ``evdet-eval`` with the quickstart's protocol (``--preset auto`` at 96×128: Gen1's box filter scaled
   to the width, the first 200 ms skipped; ``--time-tol 25000``: half a 50 ms bin, labels are in every
   bin) into ``OUT_DIR/test_metrics.json``.

Prints one line: validation and test AP50 / AP, the quickstart's wall and CPU time. Everything runs as a
user would type it, through the installed command-line apps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

TEST_EVAL = ["--preset", "auto", "--height", "96", "--width", "128", "--time-tol", "25000"]
"""``evdet-eval`` options of the quickstart's protocol (the tiny preset's 96×128 sensor, 50 ms bins)."""


def child_cpu_s() -> float:
    """User + system CPU seconds of the finished child processes (and their children) so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``, failing loudly; (wall, CPU) seconds it took."""
    c0, w0 = child_cpu_s(), time.perf_counter()
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - w0, child_cpu_s() - c0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--seed", type=int, default=0, help="the quickstart's --seed")
    p.add_argument("--test-seed", type=int, default=None, help="seed of the test split (default SEED + 1000)")
    p.add_argument("--num-test", type=int, default=24, help="test recordings")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier check")
    args = p.parse_args(argv)
    test_seed = args.seed + 1000 if args.test_seed is None else args.test_seed
    if test_seed == args.seed:
        raise SystemExit("check_quickstart: --test-seed must differ from --seed (unseen recordings)")
    out: Path = args.out_dir
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ow = ["--overwrite"] if args.overwrite else []

    qs = out / "quickstart"
    wall, cpu = run([str(bin_dir / "evdet-quickstart"), str(qs), "--seed", str(args.seed), "--no-progress",
                     *ow, *extra], env)
    val = json.loads((qs / "run" / "metrics_val.json").read_text())

    data = out / "test_data"
    run([str(bin_dir / "evdet-make-synthetic"), str(data), "--preset", "tiny", "--num-train", "0",
         "--num-val", "0", "--num-test", str(args.num_test), "--seed", str(test_seed), "--num-workers", "2",
         "--no-progress", *ow], env)
    det = out / "test_detections"
    run([str(bin_dir / "evdet-detect"), str(qs / "run" / "checkpoints" / "last.ckpt"), str(data / "test"),
         "-o", str(det), "--score-thresh", "0.01", "--no-progress", *ow], env)
    metrics_path = out / "test_metrics.json"
    run([str(bin_dir / "evdet-eval"), str(data / "test"), str(det), *TEST_EVAL, "--json", str(metrics_path),
         "--no-progress", *ow], env)
    test = json.loads(metrics_path.read_text())
    test = test.get("metrics", test)
    print(f"check_quickstart: seed {args.seed}, test seed {test_seed} ({args.num_test} recordings): "
          f"val AP50 {val['AP50']:.4f} AP {val['AP']:.4f} | test AP50 {test['AP50']:.4f} AP {test['AP']:.4f} "
          f"| quickstart wall {wall:.0f} s, CPU {cpu:.0f} s ({cpu / 60:.1f} CPU-min)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
