# Kept for `jupyterhub -f hub/jupyterhub_config.py` in a checkout. The configuration itself is
# deepvre_hub/jupyterhub_config.py, installed with the package; `deepvre hub up` runs that file.
from deepvre_hub.launcher import CONFIG_FILE

if not CONFIG_FILE.is_file():  # load_subconfig skips a missing file without a word
    raise FileNotFoundError(CONFIG_FILE)
load_subconfig(str(CONFIG_FILE))  # noqa: F821 (provided by JupyterHub)
