"""The model-from-code file of the registered model (``mlflow.pyfunc.log_model(python_model=
<this file>)``): MLflow copies it beside the model and runs it to load the model, with the
model's ``code/`` folder (the ``features`` and ``models`` packages) on the path.

Nothing in the project imports it: running it only names the model class to MLflow.
"""

from mlflow.models import set_model

from models.serving import ChurnHealthModel

set_model(ChurnHealthModel())
