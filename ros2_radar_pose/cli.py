"""radar-pose: everything a user does without ROS tooling, one subcommand each."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    if args.source == "uart":
        from ros2_radar_pose.nodes.uart_demo import run_uart_demo

        return run_uart_demo(seconds=args.seconds, rate=args.rate, seed=args.seed, domain_id=args.domain_id,
                             workdir=args.workdir)
    from ros2_radar_pose.nodes.main_job import run_main_job

    return run_main_job(seconds=args.seconds, fps=args.rate, seed=args.seed, play_rate=args.play_rate,
                        domain_id=args.domain_id, workdir=args.workdir, checkpoint=args.checkpoint)


def _simulate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ros2_radar_pose.body.models import load_body_model
    from ros2_radar_pose.body.smpl_file import SMPLFileError
    from ros2_radar_pose.data.bags import BagError
    from ros2_radar_pose.data.synthetic import simulate_bag

    if args.subjects < 1 or not args.minutes > 0 or not args.fps > 0:
        print("radar-pose simulate: --subjects must be at least 1, --minutes and --fps positive", file=sys.stderr)
        return 2
    try:
        body = load_body_model(args.smpl_model)
    except SMPLFileError as error:
        print(f"radar-pose simulate: {error}", file=sys.stderr)
        return 1
    frames = args.subjects * round(args.minutes * 60 * args.fps)
    try:
        with tqdm(total=frames, unit="frame", desc=f"simulating {args.out.name}") as bar:
            counts = simulate_bag(args.out, args.subjects, args.minutes, args.seed, args.fps, args.storage,
                                  8 if args.humble else 9, body, overwrite=args.overwrite, progress=bar.update)
    except (BagError, FileExistsError, ValueError) as error:
        print(f"radar-pose simulate: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.storage}, bag version {8 if args.humble else 9}): "
          + ", ".join(f"{topic} {n}" for topic, n in counts.items()))
    return 0


def _import_mars(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ros2_radar_pose.data.bags import BagError
    from ros2_radar_pose.data.mars import MarsFormatError, load_mars
    from ros2_radar_pose.data.mars_bag import write_mars_bag

    try:
        recordings = [load_mars(subject, split, args.variant, root=args.root)
                      for subject in args.subjects for split in args.splits]
    except (FileNotFoundError, MarsFormatError, ValueError) as error:
        print(f"radar-pose import-mars: {error}", file=sys.stderr)
        return 1
    try:
        with tqdm(total=sum(map(len, recordings)), unit="frame", desc=f"writing {args.out.name}") as bar:
            counts = write_mars_bag(args.out, recordings, args.storage, 8 if args.humble else 9,
                                    args.label_topic, overwrite=args.overwrite, progress=bar.update)
    except (BagError, FileExistsError, ValueError) as error:
        print(f"radar-pose import-mars: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: " + ", ".join(f"{topic} {n}" for topic, n in counts.items())
          + " (labels: MARS-19 joints, " + ", ".join(f"{r.subject} {r.split}" for r in recordings) + ")")
    return 0


def _label(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ros2_radar_pose.data.bags import IMAGE, BagError, BagReader
    from ros2_radar_pose.teacher.backends import make_backend
    from ros2_radar_pose.teacher.camera import CameraMount
    from ros2_radar_pose.teacher.labeller import label_bag

    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    mount = None
    if args.camera_xyz is not None or args.camera_rpy is not None:
        mount = CameraMount.from_body_pose(args.camera_xyz or [0.0] * 3, args.camera_rpy or [0.0] * 3)
    try:
        backend = make_backend(args.backend, str(args.hybrik_checkpoint or ""), str(args.smpl_model or ""), device)
        with BagReader(args.bag) as reader:
            info = reader.topics.get(args.image_topic)
            total = info.count if info is not None and info.msgtype == IMAGE else 0
        with tqdm(total=total, unit="image", desc=f"labelling {args.bag.name} ({args.backend}, {device})") as bar:
            report = label_bag(args.bag, args.out, backend, image_topic=args.image_topic, info_topic=args.info_topic,
                               radar_frame=args.radar_frame, radar_topic=args.radar_topic, mount=mount,
                               batch_size=args.batch_size, keep_images=args.keep_images, overwrite=args.overwrite,
                               progress=bar.update)
    except (BagError, FileExistsError, ImportError, ValueError) as error:
        print(f"radar-pose label: {error}", file=sys.stderr)
        return 1
    for problem in report.problems:
        print(f"radar-pose label: warning: {problem}", file=sys.stderr)
    print(f"wrote {args.out}: {report.summary()}")
    return 0 if report.labelled else 1


def _smpl_to_npz(args: argparse.Namespace) -> int:
    from ros2_radar_pose.body.smpl_file import SMPLFileError, convert_smpl_to_npz

    try:
        convert_smpl_to_npz(args.source, args.target)
    except SMPLFileError as error:
        print(f"radar-pose smpl-to-npz: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.target}")
    return 0


def _train_option(key: str) -> str:
    group, _, name = key.rpartition(".")
    prefix = "" if group in ("", "student") else f"{group}-"
    return "--" + prefix + name.replace("_", "-")


def _train(args: argparse.Namespace) -> int:
    from ros2_radar_pose.data.bags import BagError
    from ros2_radar_pose.student.checkpoint import CheckpointError
    from ros2_radar_pose.train.trainer import TrainConfig, TrainingError, train

    values = {key: getattr(args, "train:" + key) for key in TrainConfig.flat_defaults()}
    try:
        result = train(TrainConfig.from_flat({"bags": [str(b) for b in args.bags], **values}))
    except (BagError, CheckpointError, TrainingError, ValueError) as error:
        print(f"radar-pose train: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"radar-pose train: interrupted; --resume continues from {args.__dict__['train:out_dir']}/last.pt",
              file=sys.stderr)
        return 130
    print(f"wrote {result.checkpoint} after {result.steps} steps: joint L1 {100 * result.losses.get('joints', 0):.2f} "
          f"cm, {result.windows_per_s:.0f} windows/s"
          + (f", validation MPJPE {result.val_mpjpe_cm:.2f} cm" if result.val_mpjpe_cm is not None else ""))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from ros2_radar_pose.body.models import load_body_model
    from ros2_radar_pose.body.smpl_file import SMPLFileError
    from ros2_radar_pose.data.bags import BagError
    from ros2_radar_pose.student.checkpoint import CheckpointError, load_student, read_checkpoint
    from ros2_radar_pose.train.dataset import load_bags
    from ros2_radar_pose.train.evaluate import labelled_stamps, predict_last_frames, predict_orientations
    from ros2_radar_pose.train.metrics import orientation_errors_deg, score
    from ros2_radar_pose.train.plots import write_report_png

    try:
        model = load_student(args.checkpoint, args.device)
        config = model.config
        preprocess = args.preprocess
        if preprocess is None:      # as the student was trained
            preprocess = read_checkpoint(args.checkpoint).get("train_config", {}).get("preprocess", True)
        # Orientations are not scored: positions of the student's joint set are.
        recordings = load_bags(args.bags, config.joint_set, False, points_topic=args.points_topic,
                               label_topic=args.label_topic, tolerance_s=args.tolerance, max_points=config.max_points,
                               preprocess=preprocess)
        predictions, truth = predict_last_frames(model, recordings, device=args.device, progress=True)
        scores = score(predictions, truth, model.joint_set)
        orientation = None
        if config.rotations and all(rec.orientations is not None for rec in recordings):
            body = load_body_model(args.smpl_model)
            orientation = orientation_errors_deg(*predict_orientations(model, recordings, body, device=args.device))
    except (BagError, CheckpointError, SMPLFileError, ValueError) as error:
        print(f"radar-pose eval: {error}", file=sys.stderr)
        return 1
    print(scores.format_table(model.joint_set.names))
    report = scores.to_json_dict()
    if orientation is not None:
        worst = int(np.argmax(orientation))
        print(f"\n  orientation error (global, through HybrIK IK): mean {orientation.mean():.1f} deg, "
              f"{model.joint_set.names[0]} {orientation[0]:.1f} deg, worst {model.joint_set.names[worst]} "
              f"{orientation[worst]:.1f} deg")
        per_joint = {n: round(float(e), 3) for n, e in zip(model.joint_set.names, orientation)}
        report["orientation_error_deg"] = {"mean": round(float(orientation.mean()), 3), **per_joint}
    png = args.png or Path(args.checkpoint).with_suffix(".eval.png")
    write_report_png(png, scores, predictions, truth, model.joint_set, labelled_stamps(recordings),
                     title=f"{Path(args.checkpoint).name} on {', '.join(Path(b).name for b in args.bags)}")
    print(f"wrote {png}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ros2_radar_pose.nodes.compose import plan, run_graph
    from ros2_radar_pose.resources import share_file

    specs = plan(radar_topic=args.radar_topic, student_checkpoint=str(args.student_checkpoint or ""),
                 device=args.device, physics=args.physics, mount_xyz=args.mount_xyz, mount_rpy=args.mount_rpy,
                 publish_mount=args.publish_mount, bag=str(args.bag or ""), rate=args.rate, loop=args.loop,
                 teacher=args.teacher,
                 teacher_backend=args.teacher_backend, hybrik_checkpoint=str(args.hybrik_checkpoint or ""),
                 smpl_model=str(args.smpl_model or ""), image_topic=args.image_topic,
                 camera_info_topic=args.camera_info_topic)
    params_file = args.params_file or share_file("config/radar_pose.yaml")
    if not Path(params_file).is_file():
        print(f"radar-pose run: no params file {params_file}", file=sys.stderr)
        return 2
    return run_graph(specs, params_file, args.ros_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radar-pose", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="the main job on a built-in default: a synthetic session (a person in "
                                            "front of a simulated radar) played through the whole graph, recorded "
                                            "and reported")
    demo.add_argument("--source", choices=("bag", "uart"), default="bag",
                      help="bag: simulate a bag and play it (default); uart: a generated TI UART byte stream "
                           "read by radar_ingest's own driver")
    demo.add_argument("--seconds", type=float, default=20.0, help="length of the generated recording (default 20)")
    demo.add_argument("--rate", type=float, default=20.0, help="radar frames per second (default 20)")
    demo.add_argument("--play-rate", type=float, default=1.0, help="bag playback speed factor (default 1)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the generated scene (default 0)")
    demo.add_argument("--domain-id", type=int, default=None,
                      help="ROS_DOMAIN_ID for the demo's nodes (default: a random private one)")
    demo.add_argument("--workdir", type=Path, default=None, help="where the data and logs go (default: a temp dir)")
    demo.add_argument("--checkpoint", type=Path, default=None,
                      help="student checkpoint (default: the one the package ships, models/student_sim.pt)")
    demo.set_defaults(run=_demo)
    simulate = commands.add_parser("simulate", help="write a synthetic rosbag2 bag: people moving in front of a "
                                                    "simulated radar, with teacher and ground-truth skeletons")
    simulate.add_argument("--out", type=Path, required=True, help="bag to write (a directory, as ros2 bag makes)")
    simulate.add_argument("--subjects", type=int, default=1, help="people, one after the other (default 1)")
    simulate.add_argument("--minutes", type=float, default=1.0, help="minutes per subject (default 1)")
    simulate.add_argument("--seed", type=int, default=0, help="the same seed writes the same bag (default 0)")
    simulate.add_argument("--fps", type=float, default=20.0, help="radar frames per second (default 20)")
    simulate.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage (default mcap)")
    simulate.add_argument("--humble", action="store_true", help="write bag version 8, which ROS 2 Humble reads")
    simulate.add_argument("--smpl-model", type=Path, default=None,
                          help="SMPL model file for the bodies (default: the built-in anthropometric body)")
    simulate.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    simulate.set_defaults(run=_simulate)
    mars = commands.add_parser("import-mars", help="turn MARS csv files (radar clouds, Kinect skeletons) into a "
                                                   "bag: clouds on /radar/points, MARS-19 skeletons as labels")
    mars.add_argument("root", type=Path, nargs="?", default=None,
                      help="MARS folder holding woutlier/ and wooutlier/ (default: $RADAR_POSE_MARS or "
                           "../shared/data/mars)")
    mars.add_argument("--out", type=Path, required=True, help="bag to write")
    mars.add_argument("--subjects", nargs="+", default=["1", "3"], help="subjects (default: 1 3)")
    mars.add_argument("--splits", nargs="+", default=["validate"], choices=("validate", "test"),
                      help="splits (default: validate)")
    mars.add_argument("--variant", default="woutlier", choices=("woutlier", "wooutlier"),
                      help="woutlier: raw clouds (default); wooutlier: outliers removed")
    mars.add_argument("--label-topic", default="/radar_pose/teacher/skeleton",
                      help="topic of the Kinect labels (default: the teacher's, which training reads)")
    mars.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    mars.add_argument("--humble", action="store_true", help="write bag version 8, which ROS 2 Humble reads")
    mars.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    mars.set_defaults(run=_import_mars)
    trainer = commands.add_parser("train", help="train the radar student on labelled bags (torchrun for several "
                                                "processes); --resume continues after a crash")
    trainer.add_argument("bags", nargs="+", type=Path, help="bags with radar clouds and label skeletons")
    from ros2_radar_pose.train.trainer import TrainConfig

    for key, default in TrainConfig.flat_defaults().items():
        option = {"dest": "train:" + key, "default": default, "help": f"(default: {default})",
                  "metavar": key.rpartition(".")[2].upper()}
        if isinstance(default, bool):
            option["action"] = argparse.BooleanOptionalAction
            del option["metavar"]
        elif isinstance(default, list):
            option.update(nargs="*", type=str)
        else:
            option["type"] = str if default is None else type(default)
        trainer.add_argument(_train_option(key), **option)
    trainer.set_defaults(run=_train)
    evaluate = commands.add_parser("eval", help="score a trained student on labelled bags: MAE per axis, MPJPE, "
                                                "PA-MPJPE, per-joint errors, and a PNG report")
    evaluate.add_argument("checkpoint", type=Path, help="student checkpoint (student.pt, best.pt or last.pt)")
    evaluate.add_argument("bags", nargs="+", type=Path, help="bags with radar clouds and label skeletons")
    evaluate.add_argument("--label-topic", default="/radar_pose/teacher/skeleton",
                          help="skeletons to score against (synthetic bags also have "
                               "/radar_pose/ground_truth/skeleton)")
    evaluate.add_argument("--points-topic", default="/radar/points")
    evaluate.add_argument("--tolerance", type=float, default=0.05, help="stamp pairing tolerance in s (default 0.05)")
    evaluate.add_argument("--preprocess", action=argparse.BooleanOptionalAction, default=None,
                          help="clean raw clouds as radar_ingest does (default: as the student was trained)")
    evaluate.add_argument("--smpl-model", type=Path, default=None,
                          help="SMPL model file the student's orientations are solved for (default: the built-in body)")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--png", type=Path, default=None, help="report image (default: CHECKPOINT.eval.png)")
    evaluate.add_argument("--json", type=Path, default=None, help="also write the scores as JSON here")
    evaluate.set_defaults(run=_eval)
    label = commands.add_parser("label", help="run the camera teacher over the images of a bag and write a new bag "
                                              "with the radar topics and the teacher's skeletons, for training")
    label.add_argument("bag", type=Path, help="recorded bag with camera images (and radar clouds)")
    label.add_argument("--out", type=Path, required=True, help="labelled bag to write")
    label.add_argument("--backend", choices=("blazepose", "hybrik"), default="blazepose",
                       help="blazepose: no download (mediapipe extra, default); hybrik: needs "
                            "--hybrik-checkpoint and --smpl-model")
    label.add_argument("--hybrik-checkpoint", type=Path, default=None, help="HybrIK ResNet-34 checkpoint")
    label.add_argument("--smpl-model", type=Path, default=None, help="SMPL model file (required by hybrik)")
    label.add_argument("--device", default="auto", help="torch device (default: cuda when there is one)")
    label.add_argument("--batch-size", type=int, default=16, help="images per network call (default 16)")
    label.add_argument("--image-topic", default="/camera/image_raw")
    label.add_argument("--info-topic", default="/camera/camera_info")
    label.add_argument("--radar-frame", default="radar_link", help="frame of the skeletons (default radar_link)")
    label.add_argument("--radar-topic", default="/radar_pose/points",
                       help="radar_ingest's person cloud, used to box the person when the bag has it")
    label.add_argument("--camera-xyz", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                       help="camera position in the radar frame, m (default: from the bag's /tf_static)")
    label.add_argument("--camera-rpy", type=float, nargs=3, default=None, metavar=("ROLL", "PITCH", "YAW"),
                       help="camera orientation in the radar frame (x forward, z up), rad")
    label.add_argument("--keep-images", action="store_true",
                       help="copy the images too (default: the labelled bag holds no camera images)")
    label.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    label.set_defaults(run=_label)
    smpl = commands.add_parser("smpl-to-npz", help="turn an official SMPL .pkl (chumpy arrays need chumpy "
                                                   "installed) into an .npz of plain arrays that loads anywhere")
    smpl.add_argument("source", type=Path, help="SMPL model .pkl")
    smpl.add_argument("target", type=Path, help="the .npz to write")
    smpl.set_defaults(run=_smpl_to_npz)
    run = commands.add_parser("run", help="start the radar pose graph in one process (radar_ingest; student and "
                                          "physics with a checkpoint; a bag player; the teacher), for machines "
                                          "without ros2 launch")
    run.add_argument("--params-file", type=Path, default=None,
                     help="parameters of every node (default: the package's config/radar_pose.yaml)")
    run.add_argument("--radar-topic", default="/radar/points",
                     help="the radar driver's PointCloud2 (ti_mmwave_rospkg: /ti_mmwave/radar_scan_pcl)")
    run.add_argument("--student-checkpoint", type=Path, default=None,
                     help="student checkpoint (radar-pose train writes OUT/student.pt); without it: no student")
    run.add_argument("--device", default="cpu", help="torch device of the student and the hybrik teacher "
                                                     "(default cpu)")
    run.add_argument("--no-physics", dest="physics", action="store_false",
                     help="no physics refinement: the student publishes TF and markers itself")
    run.add_argument("--mount-xyz", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                     help="the radar's position in world (floor at z = 0), m, for physics (default: the params "
                          "file's mount_translation; a /tf_static world -> radar_link wins over both)")
    run.add_argument("--mount-rpy", type=float, nargs=3, default=None, metavar=("ROLL", "PITCH", "YAW"),
                     help="the radar's roll, pitch, yaw in world, rad, for physics (default: the params file's)")
    run.add_argument("--publish-mount", action="store_true",
                     help="publish the mount (--mount-xyz/--mount-rpy, else the params file's radar_mount) as "
                          "world -> radar_link on /tf_static, for RViz and physics")
    run.add_argument("--bag", type=Path, default=None,
                     help="replay this bag into the graph (a rosbag2 directory, an .mcap or a .db3 file) instead "
                          "of a live radar")
    run.add_argument("--rate", type=float, default=1.0, help="bag playback speed factor (default 1)")
    run.add_argument("--loop", action="store_true", help="play the bag again and again")
    run.add_argument("--teacher", action="store_true",
                     help="also run the camera teacher (a recording session; start the camera driver beside it)")
    run.add_argument("--teacher-backend", choices=("blazepose", "hybrik"), default="blazepose",
                     help="blazepose: the mediapipe extra (default); hybrik: needs --hybrik-checkpoint and "
                          "--smpl-model")
    run.add_argument("--hybrik-checkpoint", type=Path, default=None, help="HybrIK ResNet-34 checkpoint")
    run.add_argument("--smpl-model", type=Path, default=None, help="SMPL model file of the teacher")
    run.add_argument("--image-topic", default="/camera/image_raw", help="the camera driver's image")
    run.add_argument("--camera-info-topic", default="/camera/camera_info", help="the camera driver's calibration")
    run.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[], metavar="ARG",
                     help="ROS arguments for every node, to the end of the line (--ros-args --log-level debug)")
    run.set_defaults(run=_run)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
