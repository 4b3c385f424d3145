"""deepvre: a virtual research environment for deep learning in science."""

__version__ = "0.1.0"
