"""Adapters to other training libraries. Each submodule imports its library lazily:

* `agents.integrations.trl`: `TRLEnvAdapter` (dataset, reward functions, multi-turn
  `rollout_func`) for `trl.GRPOTrainer`.
* `agents.integrations.trl_environment`: `GroundingToolEnv`, the env as `environment_factory`
  tools (`crop` returns the zoomed view as an image), and reward functions reading it.
* `agents.integrations.verl`: the `grounding_gym` agent loop and the `srpo`/`srpo_target`
  advantage estimators, registered in verl's registries on import.
"""
