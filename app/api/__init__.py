"""HTTP layer: thin routes over ``app.gates``."""
