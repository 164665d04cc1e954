"""The radar-only student: point clouds of a window of frames in, 3D pose out."""
