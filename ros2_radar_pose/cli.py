"""radar-pose: everything a user does without ROS tooling, one subcommand each."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from ros2_radar_pose.nodes.demo import run_demo

    return run_demo(seconds=args.seconds, rate=args.rate, seed=args.seed, domain_id=args.domain_id,
                    workdir=args.workdir)


def _smpl_to_npz(args: argparse.Namespace) -> int:
    from ros2_radar_pose.body.smpl_file import SMPLFileError, convert_smpl_to_npz

    try:
        convert_smpl_to_npz(args.source, args.target)
    except SMPLFileError as error:
        print(f"radar-pose smpl-to-npz: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radar-pose", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="the main job on a built-in default: a generated TI radar "
                                            "stream replayed through the ROS 2 nodes")
    demo.add_argument("--seconds", type=float, default=20.0, help="length of the generated stream (default 20)")
    demo.add_argument("--rate", type=float, default=20.0, help="radar frames per second (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the generated scene (default 0)")
    demo.add_argument("--domain-id", type=int, default=None,
                      help="ROS_DOMAIN_ID for the demo's nodes (default: a random private one)")
    demo.add_argument("--workdir", type=Path, default=None, help="where the stream and logs go (default: a temp dir)")
    demo.set_defaults(run=_demo)
    smpl = commands.add_parser("smpl-to-npz", help="turn an official SMPL .pkl (chumpy arrays need chumpy "
                                                   "installed) into an .npz of plain arrays that loads anywhere")
    smpl.add_argument("source", type=Path, help="SMPL model .pkl")
    smpl.add_argument("target", type=Path, help="the .npz to write")
    smpl.set_defaults(run=_smpl_to_npz)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
