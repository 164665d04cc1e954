"""The camera teacher: image in, SMPL-24 skeleton in the radar frame out.

``camera``: the pinhole model and the camera's pose on the robot; ``crop``: the person box and the
network's input crop; ``hybrik``: the HybrIK ResNet-34 network and its checkpoints; ``blazepose``:
the zero-download MediaPipe backend; ``backends``: one interface over both.
"""
