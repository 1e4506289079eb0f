"""SB3 PPO baseline: a CNN policy trained on small synthetic images through the wrappers.

    python -m agents.baselines.sb3_ppo --total-timesteps 30000 --out runs/sb3_ppo
    grounding-gym eval --agent sb3-ppo --agent-kwargs '{"path": "runs/sb3_ppo/model.zip"}' \
        --image-size 256,384 --dataset-kwargs '{"seed": 1, ...}'   # what main() runs for you

The env is `GroundedVQA-HR-v0` on small synthetic images (`PPOArgs.image_size`), wrapped with
`FixedSizeObservation` (the view resized to `obs_size`^2, plus the options one-hot, so the policy
can tell which letter names which content) and `DiscreteCropAnswer` (crop one tile of a 2x2 or
3x3 grid of the current view, or answer A-D). Training pays the answer (1) and, as shaping, the
episode's best crop coverage of the target (`grounding_weight`); the format term is off and the
turn limit is a termination that earns nothing (`TurnLimitIsTheEnd`): otherwise both pay for
cropping until the turns run out, which is what PPO learned without them. `main` trains, saves
`model.zip` and `ppo_config.json`, then
evaluates the greedy policy with `grounding_gym.eval.evaluate` on held-out samples (dataset seed
`eval_dataset_seed`) and prints the per-bin table; the scripted baselines can be run on the very
same configuration with `--baselines`.

Needs `stable-baselines3` (extra `sb3`) and torch; CPU is enough.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from grounding_gym.actions import action_frame
from grounding_gym.data import Sample, make_dataset
from grounding_gym.geometry import Box
from grounding_gym.views import ImageHandle
from grounding_gym.wrappers import (
    DiscreteCropAnswer,
    FixedSizeObservation,
    discrete_action_text,
    encode_options,
    grid_tiles,
    resize_view,
)

ENV_ID = "GroundedVQA-HR-v0"


@dataclass
class PPOArgs:
    """Configuration of the SB3 PPO baseline (one copy of each default)."""

    total_timesteps: int = 30_000
    """environment steps of training"""
    num_envs: int = 4
    """DummyVecEnv copies"""
    seed: int = 0
    """seeds PPO and the training envs"""
    obs_size: int = 64
    """side of the square observation fed to the CNN (>= 36 for SB3's NatureCNN)"""
    grids: tuple[int, ...] = (2, 3)
    """tile grids of the crop actions (DiscreteCropAnswer)"""
    image_size: tuple[int, int] = (256, 384)
    """synthetic image sides, px (small: this is a CPU baseline)"""
    target_rel_area: tuple[float, float] = (3e-3, 0.1)
    """target relative area range of the synthetic data"""
    num_samples: int = 256
    """training samples (drawn once and kept in memory: ~0.3 MB each)"""
    max_turns: int = 3
    """env turns per episode (2 crops + an answer)"""
    max_pixels: int = 128 * 128
    """env pixel budget of a view (the CNN sees obs_size^2 anyway)"""
    grounding_weight: float = 0.3
    """weight of the episode's best crop coverage in the training reward"""
    learning_rate: float = 3e-4
    """Adam step size"""
    n_steps: int = 256
    """rollout length per env per update (n_steps * num_envs > 1 for advantage normalisation)"""
    batch_size: int = 128
    """minibatch size"""
    n_epochs: int = 4
    """epochs per update"""
    gamma: float = 0.99
    """discount"""
    ent_coef: float = 0.01
    """entropy bonus"""
    torch_threads: int = 1
    """torch CPU threads (1 avoids oversubscription on small CPUs; the batches are tiny)"""
    eval_episodes: int = 200
    """episodes of the held-out evaluation"""
    bin_edges: tuple[float, ...] = (0.01, 0.03)
    """scale-bin edges of the evaluation summary (targets here span 3e-3..0.1 of the image)"""
    eval_dataset_seed: int = 1
    """dataset seed of the held-out evaluation samples (training uses seed 0)"""
    out: str = "runs/sb3_ppo"
    """output folder: model.zip, ppo_config.json, eval/"""
    extra_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """more GroundedVQA kwargs (e.g. coord_frame)"""

    def __post_init__(self) -> None:
        if self.obs_size < 36:
            raise ValueError(f"obs_size ({self.obs_size}) must be >= 36: SB3's NatureCNN needs it")
        if self.n_steps * self.num_envs <= 1:
            raise ValueError(f"n_steps * num_envs ({self.n_steps * self.num_envs}) must be > 1")

    def dataset_kwargs(self, seed: int) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples,
            "seed": seed,
            "image_size": list(self.image_size),
            "target_rel_area": list(self.target_rel_area),
        }

    def env_kwargs(self, train: bool) -> dict[str, Any]:
        """GroundedVQA kwargs; training reweights the reward (answer + coverage shaping)."""
        kwargs: dict[str, Any] = {
            "max_turns": self.max_turns,
            "max_pixels": self.max_pixels,
            "min_pixels": 28 * 28,
            **self.extra_env_kwargs,
        }
        if train:
            kwargs.update(
                reward_weights={"answer": 1.0, "format": 0.0, "grounding": self.grounding_weight},
                grounding_metric="coverage",
            )
        return kwargs


class TurnLimitIsTheEnd(gym.Wrapper):
    """Training only: running out of turns ends the task with nothing earned.

    The env reports the turn limit as truncation, and SB3 bootstraps a truncated episode with
    the value of its last observation, as if the task went on: cropping until the turns run out
    then looks as good as continuing, and PPO learned exactly that (greedy policy: 3 crops, no
    answer, 0 % accuracy). Here the limit is a termination, and its step earns 0 (the env would
    still pay its grounding term)."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if truncated and not terminated:
            return obs, 0.0, True, False, info
        return obs, reward, terminated, truncated, info


def wrap(
    env: gym.Env, obs_size: int, grids: Sequence[int], option_vocab: Sequence[str] | None = None
) -> gym.Env:
    """`DiscreteCropAnswer(FixedSizeObservation(env, (obs_size, obs_size),
    include_options=True))`."""
    env = FixedSizeObservation(
        env, (obs_size, obs_size), include_options=True, option_vocab=option_vocab
    )
    return DiscreteCropAnswer(env, grids=grids)


def training_samples(args: PPOArgs) -> list[Sample]:
    """The training set with its images drawn once, in memory (shared by every training env, so
    training is bound by the policy, not by drawing synthetic images)."""
    return [
        dataclasses.replace(s, image=ImageHandle(s.image).image())
        for s in make_dataset("synthetic-hr", **args.dataset_kwargs(0))
    ]


def make_train_env(
    args: PPOArgs, rank: int = 0, samples: Sequence[Sample] | None = None
) -> gym.Env:
    """One wrapped, monitored training env (on `samples`, default `training_samples(args)`)."""
    from stable_baselines3.common.monitor import Monitor

    samples = training_samples(args) if samples is None else samples
    env = gym.make(ENV_ID, dataset=samples, disable_env_checker=True, **args.env_kwargs(True))
    env.reset(seed=args.seed * 1000 + rank)
    return Monitor(TurnLimitIsTheEnd(wrap(env, args.obs_size, args.grids)))


def train(args: PPOArgs) -> Path:
    """Train PPO; returns the folder holding `model.zip` and `ppo_config.json`."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(args.torch_threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples = training_samples(args)
    venv = DummyVecEnv(
        [lambda rank=rank: make_train_env(args, rank, samples) for rank in range(args.num_envs)]
    )
    option_vocab = venv.envs[0].get_wrapper_attr("option_vocab")
    model = PPO(
        "MultiInputPolicy",
        venv,
        learning_rate=args.learning_rate,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        gamma=args.gamma,
        ent_coef=args.ent_coef,
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=args.total_timesteps)
    elapsed = time.perf_counter() - start
    model.save(out / "model.zip")
    returns = [float(r) for e in venv.envs for r in e.get_episode_rewards()]
    config = {
        "args": dataclasses.asdict(args),
        "option_vocab": list(option_vocab),
        "grids": list(args.grids),
        "obs_size": args.obs_size,
        "train_seconds": round(elapsed, 1),
        "train_episodes": len(returns),
        "train_return_first_500": float(np.mean(returns[:500])) if returns else None,
        "train_return_last_500": float(np.mean(returns[-500:])) if returns else None,
    }
    (out / "ppo_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    venv.close()
    return out


def load_policy_weights(
    path: str | os.PathLike, observation_space: gym.Space, action_space: gym.Space
) -> Any:
    """The policy of a PPO `model.zip`, loaded without unpickling anything from the zip.

    `PPO.load` would unpickle (cloudpickle) the zip's spaces, schedules and policy class: a
    hostile zip could run code. Instead the policy (`MultiInputActorCriticPolicy` with PPO's
    default `policy_kwargs`, as `train` builds it) is rebuilt from the spaces given here and
    only the zip's `policy.pth` is read, with `torch.load(weights_only=True)`.

    Raises:
        agents.checkpoint.UnsafeCheckpointError: no `policy.pth` in the zip, or it needs
            unpickling (refused), or its weights do not fit the policy.
    """
    import tempfile
    import zipfile

    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    from agents.checkpoint import UnsafeCheckpointError, load_checkpoint_file

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
            if "policy.pth" not in archive.namelist():
                raise UnsafeCheckpointError(
                    f"{path}: no policy.pth inside; not a model.zip written by `python -m "
                    "agents.baselines.sb3_ppo` (stable-baselines3's PPO.save)"
                )
            weights = Path(tmp) / "policy.pth"
            weights.write_bytes(archive.read("policy.pth"))
            state = load_checkpoint_file(weights)
    except zipfile.BadZipFile as err:
        raise UnsafeCheckpointError(f"{path}: not a zip file ({err})") from err
    policy = MultiInputActorCriticPolicy(
        _channels_first(observation_space), action_space, lambda _: 0.0
    )
    try:
        policy.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        raise UnsafeCheckpointError(
            f"{path}: its policy.pth does not fit the PPO policy of these spaces (trained with "
            f"other obs_size, grids or policy_kwargs?): {str(err)[:300]}"
        ) from err
    return policy.eval()


def _channels_first(space: gym.spaces.Dict) -> gym.spaces.Dict:
    """`space` with its image boxes channel-first, as SB3's `VecTransposeImage` hands them to
    the policy during training (`predict` transposes channel-last inputs itself)."""
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage

    return gym.spaces.Dict(
        {
            key: VecTransposeImage.transpose_space(sub, key)
            if is_image_space(sub) and not is_image_space_channels_first(sub)
            else sub
            for key, sub in space.spaces.items()
        }
    )


class SB3Agent:
    """A saved PPO model as an eval `Agent`: rebuilds the wrapped observation from the raw one
    and turns the discrete action into text, from the info alone (any `num_envs`).

    Args:
        env: the unwrapped env (its dataset gives each episode's options).
        path: `model.zip`; `ppo_config.json` is read from the same folder.
        deterministic: greedy actions (default) or sampled ones.
    """

    def __init__(self, env: Any, path: str | os.PathLike, deterministic: bool = True):
        path = Path(path)
        config = json.loads((path.parent / "ppo_config.json").read_text(encoding="utf-8"))
        self.dataset = env.dataset
        self.obs_size = int(config["obs_size"])
        self.tiles = grid_tiles(config["grids"])
        self.letters = "ABCD"
        self.deterministic = deterministic
        self.option_vocab = tuple(config["option_vocab"])
        wrapped = wrap(env, self.obs_size, config["grids"], self.option_vocab)
        self.model = load_policy_weights(path, wrapped.observation_space, wrapped.action_space)

    def act(
        self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        images = np.stack(
            [resize_view(o["image"], (self.obs_size, self.obs_size)) for o in observations]
        )
        options = np.stack(
            [
                encode_options(self.dataset[int(i["sample_index"])].options, self.option_vocab)
                for i in infos
            ]
        )
        actions, _ = self.model.predict(
            {"image": images, "options": options}, deterministic=self.deterministic
        )
        return [
            discrete_action_text(
                int(a),
                self.tiles,
                self.letters,
                Box(*i["view_box"]),
                tuple(i["view_size"]),
                i["coord_frame"],
                action_frame(i),
            )
            for a, i in zip(np.asarray(actions).reshape(-1), infos, strict=True)
        ]


def make_agent(
    env: Any, path: str | os.PathLike = "runs/sb3_ppo/model.zip", deterministic: bool = True
) -> SB3Agent:
    """Factory of the `sb3-ppo` eval agent."""
    return SB3Agent(env, path, deterministic)


def evaluate_trained(
    args: PPOArgs, agent: str = "sb3-ppo", out: str | None = None, **agent_kwargs: Any
) -> dict:
    """Evaluate `agent` on the held-out configuration of `args` (the PPO's eval setting)."""
    from grounding_gym.eval import evaluate

    if agent == "sb3-ppo":
        agent_kwargs.setdefault("path", str(Path(args.out) / "model.zip"))
    return evaluate(
        agent,
        ENV_ID,
        dataset_kwargs=args.dataset_kwargs(args.eval_dataset_seed),
        env_kwargs=args.env_kwargs(False),
        agent_kwargs=agent_kwargs,
        n=args.eval_episodes,
        out_dir=out or str(Path(args.out) / "eval" / agent),
        seed=0,
        progress=False,
        benchmark="synthetic-hr-small",
        label=agent,
        bin_edges=args.bin_edges,
    )


def _field_docs(cls: type) -> dict[str, str]:
    """The docstring under each dataclass field (cleanrl style), by field name."""
    source = inspect.getsource(cls)
    return {
        m.group(1): " ".join(m.group(2).split())
        for m in re.finditer(
            r"^    (\w+): [^\n]+\n    \"\"\"(.*?)\"\"\"", source, re.MULTILINE | re.DOTALL
        )
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agents.baselines.sb3_ppo", description=__doc__.split("\n\n")[0]
    )
    docs = _field_docs(PPOArgs)
    for f in dataclasses.fields(PPOArgs):
        if f.name == "extra_env_kwargs":
            continue
        default = f.default
        flag, text = f"--{f.name.replace('_', '-')}", f"{docs.get(f.name, '')} (default {default})"
        if isinstance(default, tuple):
            parser.add_argument(
                flag,
                type=type(default[0]),
                nargs="+" if f.name == "grids" else len(default),
                default=default,
                help=text,
            )
        else:
            parser.add_argument(flag, type=type(default), default=default, help=text)
    parser.add_argument(
        "--skip-train", action="store_true", help="evaluate an existing --out/model.zip"
    )
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also evaluate the scripted baselines on the same setting",
    )
    ns = vars(parser.parse_args(list(sys.argv[1:] if argv is None else argv)))
    skip, with_baselines = ns.pop("skip_train"), ns.pop("baselines")
    ns = {k: tuple(v) if isinstance(v, list) else v for k, v in ns.items()}
    args = PPOArgs(**ns)
    if not skip:
        train(args)
        print(
            json.loads((Path(args.out) / "ppo_config.json").read_text())["train_seconds"],
            "s of training",
        )
    from grounding_gym.eval.report import summary_markdown

    print(summary_markdown(evaluate_trained(args)))
    if with_baselines:
        for name in ("no-crop", "random-crop", "sliding-window", "oracle-crop"):
            print(summary_markdown(evaluate_trained(args, name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
