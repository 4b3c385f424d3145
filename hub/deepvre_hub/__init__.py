"""Hub-side glue of deepvre: settings, hardware profiles, GPUs, spawners and authentication."""
