raise RuntimeError("_private.py must not be loaded")
