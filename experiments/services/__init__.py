"""Writes of experiments, by topic:

- `configure`: create or change an experiment (validated first), the
  seed's /ab-test/configure, the initial experiment from settings;
- `lifecycle`: start, pause, stop, promote, resume an arm;
- `evaluation`: guardrails, bandit allocation and sequential test after
  each rollup, and the push to dashboards.

Every write bumps the registry generation in its transaction, which is how
serving processes (whose catalog holds the running experiments) learn of
it within one poll interval.
"""

from experiments.services.configure import (
    OPTION_FIELDS,
    STRATEGIES,
    ExperimentSpec,
    ab_test_configure,
    experiment_save,
    experiment_spec_validate,
    experiments_from_settings,
)
from experiments.services.evaluation import (
    EvaluationReport,
    experiments_broadcast,
    experiments_evaluate,
)
from experiments.services.lifecycle import (
    arm_resume,
    experiment_pause,
    experiment_promote,
    experiment_start,
    experiment_stop,
    experiment_winner,
)

__all__ = [
    "OPTION_FIELDS",
    "STRATEGIES",
    "EvaluationReport",
    "ExperimentSpec",
    "ab_test_configure",
    "arm_resume",
    "experiment_pause",
    "experiment_promote",
    "experiment_save",
    "experiment_spec_validate",
    "experiment_start",
    "experiment_stop",
    "experiment_winner",
    "experiments_broadcast",
    "experiments_evaluate",
    "experiments_from_settings",
]
