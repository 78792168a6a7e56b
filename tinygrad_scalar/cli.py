"""The command line: `tinygrad-scalar demo` and friends."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    run_demo(out=args.out, steps=args.steps, seed=args.seed, quiet=args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinygrad-scalar",
                                     description="A scalar autograd engine for learning backprop.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train the moons and spiral classifiers, write pictures")
    demo.add_argument("--out", default="build", help="output folder (default: build)")
    demo.add_argument("--steps", type=int, default=None, help="training steps for moons")
    demo.add_argument("--seed", type=int, default=None, help="random seed")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
