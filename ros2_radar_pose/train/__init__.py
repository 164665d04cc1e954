"""Training and evaluation of the radar student."""
