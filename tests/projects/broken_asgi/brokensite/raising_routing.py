raise RuntimeError("routes are broken")
