"""The simulated ad market: scenarios, the numpy market model and the Gymnasium environment.

Importing this package registers one environment id per preset, ``AdMarket-<Preset>-v0``
(for example ``AdMarket-BidWar-v0``), so ``gymnasium.make`` finds them, and
``gymnasium.make_vec`` builds :class:`~envs.vector_env.AdMarketVectorEnv` for them.
"""

from gymnasium.envs.registration import register, registry

from envs.market_env import AdMarketEnv, score
from envs.presets import PRESETS, SHOCK_PRESETS, env_id, get_scenario
from envs.scenario import Arm, Channel, Product, Scenario, ScenarioError, Shock

for _name in PRESETS:
    if env_id(_name) not in registry:
        register(
            id=env_id(_name),
            entry_point="envs.market_env:AdMarketEnv",
            vector_entry_point="envs.vector_env:AdMarketVectorEnv",
            kwargs={"scenario": _name},
        )

__all__ = [
    "AdMarketEnv",
    "Arm",
    "Channel",
    "PRESETS",
    "Product",
    "SHOCK_PRESETS",
    "Scenario",
    "ScenarioError",
    "Shock",
    "env_id",
    "get_scenario",
    "score",
]
