"""Generate the engine benchmark workload (replay file format).

    python bench/engine_gen.py --n 1000000 --seed 1 --out bench/out/engine_1m.csv

See bench/engine.md.  The generator itself lives in matching/workload.py
so the conformance tests can use it too.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from matching import workload  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="number of commands")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--target-orders", type=int, default=10_000, help="steady book size")
    p.add_argument("--out", default="bench/out/engine_1m.csv")
    args = p.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    workload.write(args.out, args.n, seed=args.seed, target_orders=args.target_orders)
    print(f"wrote {args.n} commands to {args.out}")


if __name__ == "__main__":
    main()
