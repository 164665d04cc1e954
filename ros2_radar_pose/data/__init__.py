"""Data: rosbag2 bags, time synchronisation, dataset importers (MARS) and synthetic data."""
