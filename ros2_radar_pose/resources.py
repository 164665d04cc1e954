"""Files the package ships in its share directory (config/, launch/, models/)."""
from __future__ import annotations

from pathlib import Path

PACKAGE = "ros2_radar_pose"
SHIPPED_STUDENT = "models/student_sim.pt"     # the student the demo and the physics bench run by default


def share_file(relative: str) -> Path:
    """``relative`` (e.g. "config/radar_pose.yaml") in the installed share directory when the
    package was installed with colcon, else in the source tree (pip install -e)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory(PACKAGE)) / relative
        if installed.exists():
            return installed
    except (ImportError, LookupError, OSError):  # not installed, or no ament index at all
        pass
    source = Path(__file__).resolve().parent.parent / relative
    if source.exists():
        return source
    raise FileNotFoundError(f"{relative} is neither in the installed share directory of {PACKAGE} "
                            f"nor in the source tree ({source})")
