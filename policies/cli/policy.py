"""``autopilot policy show | convert``: inspect policy files, convert old ones safely."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from envs.io import check_output_path, check_outputs_distinct
from policies.policy_file import POLICY_SUFFIX, PolicyFileError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="show a policy file's settings, or convert a stable-baselines3 zip safely",
        description="A ppo-mpc policy is a .safetensors file: tensors and validated settings, "
        "nothing that can run code (docs/security.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print a policy file's settings and tensor shapes")
    show.add_argument("path", help="a .safetensors policy file")
    show.set_defaults(func=_show)
    convert = actions.add_parser(
        "convert",
        help="write the weights of a stable-baselines3 .zip as a policy file, running nothing",
    )
    convert.add_argument("path", help="a stable-baselines3 PPO .zip written by an older version")
    convert.add_argument("--out", required=True, help=f"the {POLICY_SUFFIX} policy to write")
    convert.set_defaults(func=_convert)


def _show(args: argparse.Namespace) -> int:
    from policies.policy_file import read_policy_file

    stored = read_policy_file(args.path)
    shapes = {name: list(value.shape) for name, value in stored.policy_tensors.items()}
    report = {
        "settings": stored.settings,
        "policy_tensors": shapes,
        "optimizer_tensors": len(stored.optimizer_tensors),
    }
    print(json.dumps(report, indent=2))
    return 0


def _convert(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != POLICY_SUFFIX:
        raise PolicyFileError(f"--out {out}: a policy file ends in {POLICY_SUFFIX}")
    check_output_path(out, "policy file")
    check_outputs_distinct([args.path], [out])
    from policies.policy_file import convert_sb3_zip

    replaced = out.exists()
    settings = convert_sb3_zip(args.path, out)
    print(
        f"{'replaced' if replaced else 'wrote'} {out}: network {settings['net_arch']}, {settings['num_timesteps']:,} training "
        f"steps; nothing in {args.path} was executed"
    )
    return 0
