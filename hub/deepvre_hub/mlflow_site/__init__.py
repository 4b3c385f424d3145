"""Put on ``PYTHONPATH`` of MLflow's server only (:mod:`deepvre_hub.mlflow_proxy`): its ``sitecustomize``."""
