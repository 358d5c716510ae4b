raise RuntimeError("_generated/ must not be loaded")
