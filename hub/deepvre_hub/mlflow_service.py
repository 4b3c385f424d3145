"""MLflow tracking as a hub-managed service (``mlflow.enabled``): the pure builders ``modes`` calls.

:func:`hub_service` is the ``c.JupyterHub.services`` entry that runs :mod:`.mlflow_proxy`
(``python -m deepvre_hub.mlflow_proxy``), which starts MLflow's own server with its basic-auth
app on loopback and forwards each hub user's requests as that user's MLflow account.
:func:`user_scopes` lets browsers open it, :func:`singleuser_environment` tells the users' servers
where it is and gives each server start a token for this service alone (``$DEEPVRE_MLFLOW_TOKEN``,
made like the marketplace's: :mod:`.market_token`). Nothing here starts anything.
"""

import sys
from pathlib import Path

from deepvre.errors import Invalid
from deepvre.market.service import url_host
from deepvre.site import addresses, environment

from . import market_token

SERVICE_NAME = "mlflow"
FOLDER = "mlflow"  # under the hub's state folder: MLflow's databases, artifacts and secrets
NOTE = "deepvre mlflow, server {server!r}"


def enabled(settings):
    return bool((settings.get("mlflow") or {}).get("enabled"))


def service_port(settings):
    """``mlflow.port``, else one free loopback port chosen once per process (the hub's)."""
    return addresses.service_port((settings.get("mlflow") or {}).get("port"), SERVICE_NAME)


def hub_service(settings, state_dir):
    """The ``c.JupyterHub.services`` entry; its folder is ``<state_dir>/mlflow``."""
    if settings.get("mode") == "kubernetes":
        raise Invalid("mlflow.enabled: the MLflow service runs in local and Slurm modes only "
                      "(the hub image does not carry mlflow)")
    section = settings.get("mlflow") or {}
    command = [sys.executable, "-m", "deepvre_hub.mlflow_proxy", f"--folder={Path(state_dir) / FOLDER}",
               f"--start-timeout={section.get('start_timeout', 600)}",
               f"--upload-limit={section.get('upload_limit', 1 << 30)}"]
    return {
        "name": SERVICE_NAME,
        "url": f"http://{url_host(settings)}:{service_port(settings)}",
        "command": command,  # it listens at the url ($JUPYTERHUB_SERVICE_URL)
        "oauth_no_confirm": True,
        "display": True,
        "environment": {},
    }


def user_scopes(settings):
    """Scopes the hub's ``user`` role gets so that browsers may open the service."""
    return [f"access:services!service={SERVICE_NAME}"] if enabled(settings) else []


def singleuser_environment(settings):
    """The servers' environment: the service's URL and a token for it alone (a callable, made at
    each start; the server's own token does not open the service)."""
    if not enabled(settings):
        return {}
    return {
        environment.MLFLOW_URL: f"http://{url_host(settings)}:{service_port(settings)}/services/{SERVICE_NAME}/",
        environment.MLFLOW_TOKEN: market_token.token_for([f"access:services!service={SERVICE_NAME}"], NOTE),
    }
