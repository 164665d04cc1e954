"""PhysCap-style physics refinement in pybullet: humanoid, tracking controller, contacts, metrics."""
