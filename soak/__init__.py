"""The fault-and-load run (``make soak``): a small site and its driver, ``run.py``."""
