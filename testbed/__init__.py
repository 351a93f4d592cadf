"""Controller side of the RT3 testbed: the RT3 method, battery models, experiments, run stores, CLI.

Importing this package is cheap: heavy dependencies (torch, transformers, pandas) are imported only by
the modules that need them, so ``testbed board …`` runs on a board that has only the device extras.
"""

__version__ = "0.1.0"
