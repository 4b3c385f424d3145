# JupyterHub configuration of deepvre, installed with the package. Start it with `deepvre hub up`
# (or `make up`), which validates the settings, prepares the state folder and runs `jupyterhub -f`
# on this file; in a checkout, `jupyterhub -f hub/jupyterhub_config.py` loads it as well.
#
# Settings: $DEEPVRE_SETTINGS (default hub/settings.yaml); state: $DEEPVRE_STATE_DIR (default var/).
# The mode (`local`, `kubernetes`, `slurm`) chooses the spawner: see deepvre_hub/modes.py.
from deepvre_hub.modes import configure, load_for_hub

c = get_config()  # noqa: F821 (provided by JupyterHub)
settings, state_dir = load_for_hub()
configure(c, settings, state_dir)
