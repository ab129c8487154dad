"""The registered model as MLflow serves it: a pyfunc that answers like ``churn score``.

MLflow logs it as code (:mod:`models.model_code` sets it), not as a pickle, with the
``features`` and ``models`` packages in the model's ``code/`` folder and the scorer's plain
files as its artifacts (:mod:`models.scorer`). Loaded with ``mlflow.pyfunc.load_model`` or
served with ``mlflow models serve``, in an environment made from the model's own
``requirements.txt`` only, it reads feature rows (one per account, the columns of its
signature; ``account_id`` and ``segment`` optional) and answers per row with
:data:`models.scorer.ANSWER`: the values ``churn score`` writes for the same rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from models.scorer import HealthScorer


class ChurnHealthModel(PythonModel):
    """Churn probability, health score, band, drivers in words, protective factor and play.

    ``model`` (the :class:`models.scorer.HealthScorer`, with the scoring context of
    training as ``model.context``) is set by :meth:`load_context` from the model's artifacts.
    """

    model: HealthScorer

    def load_context(self, context: Any) -> None:
        self.model = HealthScorer.load(context.artifacts)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return self.model.answer(pd.DataFrame(model_input))
