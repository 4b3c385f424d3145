"""The shared training toolkit of the use-case notebooks.

- :mod:`.plots`: training curves, confusion matrix, sample predictions, error scatter;
- :mod:`.checkpoints`: callbacks that make an interrupted ``fit`` resume (:mod:`.callbacks`: the Keras side);
- :mod:`.report`: ``metrics.json`` (finite numbers only) and the metrics table;
- :mod:`.lineage`: publish a trained model to the marketplace with its lineage;
- :mod:`.transfer`: freeze/unfreeze, resize a base network's input, the from-scratch twin.

Heavy libraries (Keras, matplotlib) are imported inside the functions that need them.
"""
