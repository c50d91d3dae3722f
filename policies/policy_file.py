"""Policy files that cannot run code: tensors in safetensors, settings as validated JSON.

A ``ppo-mpc`` policy is one ``.safetensors`` file (docs/security.md): a JSON header, then
raw little-endian tensor bytes. The header's ``__metadata__`` holds one entry,
``settings``, a JSON object checked field by field against :data:`SETTINGS_SCHEMA`; the
tensors are the policy network's weights (``policy/<name>``) and, in training
checkpoints, the optimiser's moments (``optimizer/<param>/<name>``). Nothing in the file
is ever unpickled or imported: the network is built by this code from the validated
settings, and only tensors of the names, shapes and dtype that network expects are
accepted.

stable-baselines3's own ``.zip`` format stores pickles that run code when loaded, so such
files are refused; :func:`convert_sb3_zip` reads the weights out of one without running
anything in it (``torch.load(weights_only=True)`` on its ``policy.pth``; its pickled
``data`` entries are never touched).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.errors import InputError
from envs.io import atomic_write_bytes, read_input_bytes
from policies.planner_env import ACTION_NAMES, FEATURE_NAMES, feature_indices

#: The file format's name and version, the first two settings of every policy file.
POLICY_FORMAT = "budget-autopilot/ppo-policy"
POLICY_VERSION = 1
POLICY_SUFFIX = ".safetensors"
#: Larger than any policy this project trains (the shipped one is about 60 kB).
MAX_POLICY_BYTES = 32 * 1024 * 1024
#: Network activations a policy may name; the value is the torch.nn class name.
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU"}
#: The settings a policy file may hold: name -> (type, required, description).
SETTINGS_SCHEMA: dict[str, tuple[str, bool, str]] = {
    "format": ("str", True, f"always {POLICY_FORMAT!r}"),
    "version": ("int", True, f"format version, {POLICY_VERSION}"),
    "feature_names": ("list[str]", True, "the planner features the policy reads, in order"),
    "action_names": ("list[str]", True, "the plan entries the policy writes, in order"),
    "net_arch": ("list[int]", True, "hidden layer sizes of the actor and the critic"),
    "activation": ("str", True, f"one of {', '.join(ACTIVATIONS)}"),
    "num_timesteps": ("int", True, "environment steps the policy was trained for"),
    "trained_with": ("dict[str, scalar]", False, "training settings, for the record only"),
}
_MAX_LAYERS, _MAX_WIDTH = 8, 4096


class PolicyFileError(InputError):
    """A policy file that is missing, unsafe, malformed or made for another planner."""


@dataclass
class PolicyFile:
    """What a policy file holds, validated: settings, network weights, optimiser state."""

    settings: dict[str, Any]
    policy_tensors: dict[str, Any]
    optimizer_tensors: dict[str, Any] = field(default_factory=dict)


# -- settings -----------------------------------------------------------------------------
def make_settings(
    net_arch: list[int],
    num_timesteps: int,
    activation: str = "tanh",
    trained_with: dict | None = None,
    feature_names: Sequence[str] = FEATURE_NAMES,
) -> dict[str, Any]:
    """The settings of a policy for this planner (reading ``feature_names``)."""
    settings = {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "feature_names": list(feature_names),
        "action_names": list(ACTION_NAMES),
        "net_arch": [int(width) for width in net_arch],
        "activation": activation,
        "num_timesteps": int(num_timesteps),
    }
    if trained_with:
        settings["trained_with"] = {
            key: value
            for key, value in trained_with.items()
            if isinstance(value, (str, int, float, bool)) or value is None
        }
    return validate_settings(settings, "policy settings")


def validate_settings(settings: Any, source: str) -> dict[str, Any]:
    """Check a settings object against :data:`SETTINGS_SCHEMA` and this planner.

    Raises:
        PolicyFileError: the first problem, naming the setting and the fix.
    """

    def fail(problem: str) -> None:
        raise PolicyFileError(f"{source}: {problem}")

    if not isinstance(settings, dict):
        fail("the settings are not a JSON object; write the policy with `autopilot train`")
    unknown = sorted(set(settings) - set(SETTINGS_SCHEMA))
    if unknown:
        fail(
            f"unknown setting {unknown[0]!r}; a policy file holds only {', '.join(SETTINGS_SCHEMA)}"
        )
    for name, (_, required, _) in SETTINGS_SCHEMA.items():
        if required and name not in settings:
            fail(f"missing setting {name!r}; write the policy with `autopilot train`")
    if settings["format"] != POLICY_FORMAT:
        fail(f"format {settings['format']!r} is not {POLICY_FORMAT!r}")
    if type(settings["version"]) is not int or settings["version"] != POLICY_VERSION:
        fail(
            f"format version {settings['version']!r} is not {POLICY_VERSION}; "
            "retrain the policy with this version (`autopilot train`)"
        )
    for name in ("feature_names", "action_names"):
        value = settings[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            fail(f"{name} must be a list of names")
    # A policy reads any of the planner's features, each once, in the order it names them
    # (older policies read fewer); it must write exactly the planner's actions.
    try:
        feature_indices(settings["feature_names"])
    except ValueError as err:
        fail(f"feature_names: {err}; retrain the policy with `autopilot train`")
    actions = settings["action_names"]
    if tuple(actions) != ACTION_NAMES:
        fail(
            f"the policy was trained for {len(actions)} actions ({', '.join(actions[:3])}, "
            f"...), this planner has {len(ACTION_NAMES)}; retrain it with `autopilot train` "
            "(or `make train-default`)"
        )
    arch = settings["net_arch"]
    if (
        not isinstance(arch, list)
        or not 1 <= len(arch) <= _MAX_LAYERS
        or not all(type(w) is int and 1 <= w <= _MAX_WIDTH for w in arch)
    ):
        fail(
            f"net_arch {arch!r} must list 1 to {_MAX_LAYERS} layer widths between 1 and {_MAX_WIDTH}"
        )
    if settings["activation"] not in ACTIVATIONS:
        fail(f"activation {settings['activation']!r} is not one of {', '.join(ACTIVATIONS)}")
    steps = settings["num_timesteps"]
    if type(steps) is not int or steps < 0:
        fail(f"num_timesteps {steps!r} must be a whole number of steps, 0 or more")
    record = settings.get("trained_with", {})
    if not isinstance(record, dict) or not all(
        isinstance(k, str)
        and (value is None or isinstance(value, (str, int, bool)) or _finite(value))
        for k, value in record.items()
    ):
        fail("trained_with must map names to plain numbers, text or true/false")
    return settings


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


# -- the network --------------------------------------------------------------------------
def build_network(settings: dict[str, Any]):
    """An untrained stable-baselines3 actor-critic of the shape ``settings`` describe."""
    import torch
    from stable_baselines3.common.policies import ActorCriticPolicy

    from policies.planner_env import planner_spaces

    observation_space, action_space = planner_spaces(len(settings["feature_names"]))
    return ActorCriticPolicy(
        observation_space,
        action_space,
        lr_schedule=lambda _: 0.0,
        net_arch=list(settings["net_arch"]),
        activation_fn=getattr(torch.nn, ACTIVATIONS[settings["activation"]]),
    )


def load_weights(network: Any, tensors: dict[str, Any], source: str) -> None:
    """Copy ``tensors`` into ``network``: exactly its parameter names, shapes and dtypes."""
    import torch

    expected = network.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        what = f"missing weights {missing[0]!r}" if missing else f"unexpected tensor {extra[0]!r}"
        raise PolicyFileError(
            f"{source}: {what} for the network its settings describe; the file is damaged or "
            "was not written by `autopilot train`"
        )
    for name, value in tensors.items():
        want = expected[name]
        if tuple(value.shape) != tuple(want.shape) or value.dtype != want.dtype:
            raise PolicyFileError(
                f"{source}: tensor {name!r} is {value.dtype} {tuple(value.shape)}, the network "
                f"needs {want.dtype} {tuple(want.shape)}; the file is damaged"
            )
        if not bool(torch.isfinite(value).all()):
            raise PolicyFileError(f"{source}: tensor {name!r} holds NaN or infinite values")
    network.load_state_dict(tensors, strict=True)


# -- writing ------------------------------------------------------------------------------
def policy_bytes(settings: dict[str, Any], network: Any, optimizer: Any = None) -> bytes:
    """A policy file's bytes: the network's weights and, if given, the optimiser's state."""
    from safetensors.torch import save

    tensors = {
        f"policy/{name}": value.detach().cpu().contiguous()
        for name, value in network.state_dict().items()
    }
    if optimizer is not None:
        for index, state in optimizer.state_dict()["state"].items():
            for name, value in state.items():
                tensors[f"optimizer/{index}/{name}"] = value.detach().cpu().contiguous()
    validate_settings(settings, "policy settings")
    return save(tensors, metadata={"settings": json.dumps(settings, sort_keys=True)})


def save_policy(
    path: str | Path, settings: dict[str, Any], network: Any, optimizer: Any = None
) -> Path:
    """Write a policy file atomically (a reader never sees a half-written policy)."""
    path = Path(path)
    atomic_write_bytes(path, policy_bytes(settings, network, optimizer))
    return path


# -- reading ------------------------------------------------------------------------------
def _header(data: bytes, source: str) -> dict[str, Any]:
    if len(data) < 8:
        raise PolicyFileError(
            f"{source}: too short to be a policy file; give a .safetensors policy"
        )
    length = int.from_bytes(data[:8], "little")
    if length < 2 or length > min(len(data) - 8, 16 * 1024 * 1024):
        raise PolicyFileError(
            f"{source}: not a safetensors policy file (bad header length); give a file "
            "written by `autopilot train`"
        )
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise PolicyFileError(
            f"{source}: not a safetensors policy file (its header is not JSON); give a file "
            "written by `autopilot train`"
        ) from None
    if not isinstance(header, dict):
        raise PolicyFileError(f"{source}: not a safetensors policy file (bad header)")
    return header


def read_policy_file(path: str | Path) -> PolicyFile:
    """Read and validate a policy file; nothing in it is executed.

    Raises:
        PolicyFileError: the file is missing, not a regular file, too large, a
            stable-baselines3 zip, malformed, or made for another planner.
    """
    path = Path(path)
    source = str(path)
    data = read_input_bytes(path, "policy file", MAX_POLICY_BYTES, PolicyFileError)
    if data[:4] == b"PK\x03\x04":
        raise PolicyFileError(
            f"{source}: a zip archive (stable-baselines3's format), which holds pickles that "
            "can run code when loaded, so it is refused; convert it with `autopilot policy "
            f"convert {path.name} --out {path.stem}{POLICY_SUFFIX}` (reads only its weights) "
            "or retrain with `autopilot train`"
        )
    header = _header(data, source)
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("settings"), str):
        raise PolicyFileError(
            f"{source}: the file has no policy settings; it is a safetensors file but not a "
            "policy written by `autopilot train`"
        )
    if set(metadata) != {"settings"}:
        extra = sorted(set(metadata) - {"settings"})[0]
        raise PolicyFileError(
            f"{source}: unknown metadata entry {extra!r}; only 'settings' is allowed"
        )
    try:
        settings = json.loads(metadata["settings"])
    except (json.JSONDecodeError, RecursionError):
        raise PolicyFileError(f"{source}: the policy settings are not valid JSON") from None
    settings = validate_settings(settings, source)
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PolicyFileError(
            f"{source}: the tensors cannot be read ({reason}); the file is damaged"
        ) from None
    policy = {k[len("policy/") :]: v for k, v in tensors.items() if k.startswith("policy/")}
    optimizer = {
        k[len("optimizer/") :]: v for k, v in tensors.items() if k.startswith("optimizer/")
    }
    stray = [k for k in tensors if not k.startswith(("policy/", "optimizer/"))]
    if stray:
        raise PolicyFileError(f"{source}: unexpected tensor {stray[0]!r}; the file is damaged")
    return PolicyFile(settings, policy, optimizer)


def load_policy_network(path: str | Path) -> Any:
    """The policy network (an SB3 ``ActorCriticPolicy`` in eval mode) stored at ``path``."""
    stored = read_policy_file(path)
    network = build_network(stored.settings)
    load_weights(network, stored.policy_tensors, str(path))
    network.set_training_mode(False)
    network.feature_names = tuple(stored.settings["feature_names"])
    return network


def restore_optimizer(optimizer: Any, tensors: dict[str, Any], source: str) -> None:
    """Put a checkpoint's optimiser moments back; the hyper-parameters stay the config's."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition("/")
        if not index.isdigit() or not name:
            raise PolicyFileError(
                f"{source}: bad optimiser tensor name {key!r}; the file is damaged"
            )
        state.setdefault(int(index), {})[name] = value
    groups = optimizer.state_dict()["param_groups"]
    n_params = sum(len(group["params"]) for group in groups)
    if any(index >= n_params for index in state):
        raise PolicyFileError(f"{source}: optimiser state for a parameter the network lacks")
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as err:
        raise PolicyFileError(f"{source}: the optimiser state does not fit ({err})") from None


# -- converting stable-baselines3 zips ----------------------------------------------------
def convert_sb3_zip(source: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the weights of a stable-baselines3 PPO ``.zip`` as a policy file.

    Only the zip's ``policy.pth`` member is read, with ``torch.load(weights_only=True)``,
    which refuses any pickle that is not plain tensors and containers; the zip's ``data``
    (whose ``:serialized:`` entries are pickles) is never deserialised. The network's
    widths and the number of features it reads are read from the weights' shapes; the activation is stable-baselines3's
    default, tanh, which every ``autopilot train`` policy used.

    Returns:
        The new file's settings.
    """
    import torch

    source = Path(source)
    data = read_input_bytes(source, "policy file", MAX_POLICY_BYTES, PolicyFileError)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            member = archive.getinfo("policy.pth")
            if member.file_size > MAX_POLICY_BYTES:
                raise PolicyFileError(
                    f"{source}: its policy.pth is too large to be a planner policy"
                )
            weights_bytes = archive.read(member)
            steps = 0
            if (
                "data" in archive.namelist()
                and archive.getinfo("data").file_size < 16 * 1024 * 1024
            ):
                # Plain JSON; only the integer step count is taken from it.
                data_json = json.loads(archive.read("data").decode("utf-8"))
                if isinstance(data_json, dict):
                    steps = data_json.get("num_timesteps", 0)
                steps = steps if type(steps) is int and steps >= 0 else 0
    except (
        zipfile.BadZipFile,
        KeyError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        RecursionError,
    ) as err:
        raise PolicyFileError(
            f"{source}: not a stable-baselines3 policy zip ({type(err).__name__}); nothing to convert"
        ) from None
    try:
        state = torch.load(io.BytesIO(weights_bytes), weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... for bad bytes
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PolicyFileError(
            f"{source}: its policy.pth is not plain tensors ({reason[:160]}); refused"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PolicyFileError(f"{source}: its policy.pth is not a table of tensors; refused")
    widths = []
    while f"mlp_extractor.policy_net.{2 * len(widths)}.weight" in state:
        widths.append(int(state[f"mlp_extractor.policy_net.{2 * len(widths)}.weight"].shape[0]))
    if not widths:
        raise PolicyFileError(f"{source}: no policy network in its weights; nothing to convert")
    # The features are the first ones of the planner's list, as many as the first layer
    # reads (policies trained before the model-judging features read the first 26).
    n_features = int(state["mlp_extractor.policy_net.0.weight"].shape[1])
    if n_features > len(FEATURE_NAMES):
        raise PolicyFileError(
            f"{source}: its network reads {n_features} features, this planner has "
            f"{len(FEATURE_NAMES)}; retrain it with `autopilot train`"
        )
    settings = make_settings(
        widths,
        steps,
        trained_with={"converted_from": source.name},
        feature_names=FEATURE_NAMES[:n_features],
    )
    network = build_network(settings)
    load_weights(network, dict(state), str(source))
    save_policy(out, settings, network)
    return settings
