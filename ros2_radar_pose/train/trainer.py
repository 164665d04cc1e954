"""Training the student from bags: ``train(TrainConfig)``, the code behind ``radar-pose train`` and
the ``trainer`` node.

AdamW with a linear warm-up then cosine decay, mixed precision on CUDA, gradient clipping. A
progress bar and TensorBoard logs (``OUT/tensorboard``) show the losses; ``OUT/last.pt`` is
written every ``checkpoint_every`` steps with everything needed to go on (optimizer, schedule,
gradient scaler, random state, position in the epoch), and ``--resume`` continues from it: the
batches and augmentations of an epoch depend only on (seed, epoch), so a resumed run sees the
same examples an uninterrupted one would have. ``OUT/student.pt`` is the final model;
``OUT/best.pt`` the one with the lowest validation MPJPE when validation bags are given.

Several processes (GPUs, machines) train one model through ``torchrun``: each process takes its
own share of every epoch's batches and DistributedDataParallel averages gradients; only rank 0
writes logs and checkpoints. NCCL on CUDA, gloo on CPU.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from ros2_radar_pose import topics
from ros2_radar_pose.body.joint_sets import by_name
from ros2_radar_pose.student.checkpoint import CheckpointError, config_of, read_checkpoint, save_checkpoint
from ros2_radar_pose.student.model import (
    RadarPoseStudent,
    StudentConfig,
    centre_points,
    frame_centroids,
    windows_of,
)
from ros2_radar_pose.train.dataset import Augment, Recording, WindowDataset, load_bags
from ros2_radar_pose.train.losses import LossWeights, pose_losses

MAX_BAD_STEPS = 20          # consecutive non-finite losses before training gives up


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, or a resume that does not fit)."""


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in its checkpoints."""

    bags: list[str]
    out_dir: str = "runs/student"
    val_bags: list[str] = field(default_factory=list)
    points_topic: str = topics.RADAR_POINTS
    label_topic: str = topics.TEACHER_SKELETON
    tolerance_s: float = 0.05             # radar frame <-> label stamp pairing
    gap_s: float = 1.0                    # a longer gap between frames starts a new recording
    preprocess: bool = True               # clean raw clouds as radar_ingest does (off for /radar_pose/points)
    student: StudentConfig = field(default_factory=StudentConfig)
    epochs: int = 20
    batch_size: int = 8                   # stretches of frames per step (per process)
    windows_per_example: int = 16         # windows cut from each stretch: a step trains on batch_size x this
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    grad_clip: float = 1.0
    ema: float = 0.0                      # decay per step of an average of the weights (0: off), e.g. 0.999;
                                          # validation, best.pt and student.pt then hold the average
    augment: Augment = field(default_factory=Augment)
    loss: LossWeights = field(default_factory=LossWeights)
    checkpoint_every: int = 500           # steps
    log_every: int = 20                   # steps
    amp: bool = True                      # mixed precision where the device is CUDA
    device: str = "auto"                  # auto: CUDA when there is one
    workers: int = 0                      # DataLoader worker processes
    seed: int = 0
    init: str | None = None               # start from this checkpoint's weights (fine-tuning)
    resume: bool = False                  # continue OUT/last.pt
    progress_bar: bool = True

    def __post_init__(self):
        if isinstance(self.student, dict):
            self.student = StudentConfig(**self.student)
        if isinstance(self.augment, dict):
            self.augment = Augment(**self.augment)
        if isinstance(self.loss, dict):
            self.loss = LossWeights(**self.loss)
        if not self.bags:
            raise ValueError("name at least one bag to train on")
        if min(self.epochs, self.batch_size, self.checkpoint_every, self.log_every) < 1 or not self.lr > 0:
            raise ValueError("epochs, batch_size, checkpoint_every and log_every must be >= 1, lr > 0")
        if not 0 <= self.ema < 1:
            raise ValueError("ema (the weight average's decay per step) must be in [0, 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def flat_defaults(cls) -> dict[str, object]:
        """Every setting by flat name (``student.dim``, ``augment.yaw_deg``, ``epochs``, ...) with its
        default; the trainer node's parameters and ``radar-pose train``'s options are made from it."""
        flat: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            if f.name in NESTED:
                flat.update({f"{f.name}.{k}": v for k, v in dataclasses.asdict(NESTED[f.name]()).items()})
            elif f.name != "bags":
                flat[f.name] = f.default_factory() if f.default is dataclasses.MISSING else f.default
        return flat

    @classmethod
    def from_flat(cls, values: dict[str, object]) -> TrainConfig:
        """A config from flat names (see ``flat_defaults``); missing ones keep their defaults."""
        nested: dict[str, dict] = {name: {} for name in NESTED}
        top = {}
        for key, value in values.items():
            group, _, name = key.rpartition(".")
            if group:
                if group not in NESTED:
                    raise ValueError(f"unknown training setting {key!r}")
                nested[group][name] = value
            else:
                top[key] = value
        return cls(**top, **{group: NESTED[group](**fields) for group, fields in nested.items()})


NESTED = {"student": StudentConfig, "augment": Augment, "loss": LossWeights}


@dataclass
class Progress:
    """Where training is, for a progress display (the trainer node publishes it)."""

    step: int
    total_steps: int
    epoch: int
    losses: dict[str, float]
    lr: float
    windows_per_s: float
    val_mpjpe_cm: float | None = None


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    losses: dict[str, float]
    windows_per_s: float
    val_mpjpe_cm: float | None
    skipped_steps: int
    stopped_early: bool


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but torch sees no CUDA device")
    return device


def data_statistics(recordings: list[Recording], centred: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Point feature mean and scale (5,) over real points (relative to their frame's centroid when
    ``centred``, as the student sees them), and the mean root (3,) over labels."""
    points = np.concatenate([_as_seen(rec, centred)[rec.mask] for rec in recordings])
    roots = np.concatenate([rec.targets[rec.labelled, 0] for rec in recordings])
    roots = roots[np.isfinite(roots).all(-1)]
    if len(points) < 2 or not len(roots):
        raise ValueError("the training data has too few points or labels to normalise by")
    scale = np.maximum(points.std(axis=0), 1e-3)
    return (torch.as_tensor(points.mean(axis=0)), torch.as_tensor(scale), torch.as_tensor(roots.mean(axis=0)))


def _as_seen(recording: Recording, centred: bool) -> np.ndarray:
    """A recording's points (T, N, 5) as the student's encoder takes them in, before normalising."""
    if not centred:
        return recording.points
    points = torch.from_numpy(recording.points)
    return centre_points(points, frame_centroids(points, torch.from_numpy(recording.mask))).numpy()


def schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then cosine decay to zero at ``total`` steps."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return factor


def _ema(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """The weight average's step, in place on all parameters at once: its decay ramps up as
    (1 + n) / (10 + n) over the first updates to ``decay``, so the average of a short run is not
    left at the first step's weights. The decay is read once per step (one device sync, not one per
    parameter)."""
    def update(averages: list[torch.Tensor], currents: list[torch.Tensor], updates: torch.Tensor) -> None:
        n = float(updates)
        keep = min(decay, (1.0 + n) / (10.0 + n))
        for average, current in zip(averages, currents):
            if average.is_floating_point():
                average.add_(current - average, alpha=1.0 - keep)
            else:       # a counter (the Performer's redraws): averaged, then cut back to its type
                average.copy_(average + (current - average) * (1.0 - keep))
    return update


def epoch_batches(size: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This process's batches of an epoch: a permutation fixed by (seed, epoch), cut into full
    batches of ``batch_size`` per process (the remainder waits for the next epoch)."""
    order = np.random.default_rng([seed, epoch]).permutation(size)
    steps = size // (batch_size * world)
    return [order[(s * world + rank) * batch_size:(s * world + rank + 1) * batch_size].tolist() for s in range(steps)]


def collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([e[key] for e in examples]) for key in examples[0]}


def train(config: TrainConfig, on_progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train a student as ``config`` says; see the module docstring. ``on_progress`` is called
    every ``log_every`` steps; ``should_stop`` is polled every step, and a True stops training
    after writing a checkpoint to resume from."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(config.device, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    lead = rank == 0
    say = log if lead else (lambda _: None)
    out = Path(config.out_dir)
    last = out / "last.pt"
    try:
        return _train(config, device, rank, world, lead, say, out, last, on_progress, should_stop)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(config, device, rank, world, lead, say, out, last, on_progress, should_stop) -> TrainResult:
    resumed = None
    if config.resume and last.exists():
        resumed = read_checkpoint(last)
        if "train" not in resumed:
            raise CheckpointError(last, "holds a model but no training state to resume")
        student_config = config_of(resumed, last)
        if student_config != config.student:
            say(f"resuming {last}: its student config is used, not the one given ({student_config})")
        say(f"resuming {last} at step {resumed['train']['step']}")
    elif config.resume:
        say(f"nothing to resume in {out} (no last.pt): starting afresh")
    student_config = config_of(resumed, last) if resumed else config.student
    if config.init and not resumed:
        init = read_checkpoint(config.init)
        student_config = config_of(init, config.init)
        say(f"fine-tuning {config.init} (its student config: {student_config})")

    joint_set = by_name(student_config.joint_set)
    options = dict(points_topic=config.points_topic, label_topic=config.label_topic, tolerance_s=config.tolerance_s,
                   gap_s=config.gap_s, max_points=student_config.max_points, preprocess=config.preprocess)
    recordings = load_bags(config.bags, joint_set, student_config.rotations, log=say, **options)
    val_recordings = (load_bags(config.val_bags, joint_set, student_config.rotations, log=say, **options)
                      if config.val_bags else [])
    dataset = WindowDataset(recordings, student_config.window, config.augment, config.seed,
                            config.windows_per_example)
    steps_per_epoch = len(dataset) // (config.batch_size * world)
    if steps_per_epoch < 1:
        raise ValueError(f"{len(dataset)} stretches of labelled frames make no batch of {config.batch_size} "
                         f"per process ({world} processes): lower --batch-size or --windows-per-example")
    total_steps = steps_per_epoch * config.epochs

    torch.manual_seed(config.seed)
    model = RadarPoseStudent(student_config)
    if resumed:
        model.load_state_dict(resumed["model"])
    elif config.init:
        model.load_state_dict(init["model"])
    else:
        model.set_statistics(*data_statistics(recordings, student_config.centred))
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(config.warmup_steps, total_steps))
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step = 0
    if resumed:
        state = resumed["train"]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        step = state["step"]
        if state.get("total_steps") != total_steps:
            raise TrainingError(f"{last} was trained for {state.get('total_steps')} steps in all, this run makes "
                                f"{total_steps} (other bags, epochs, batch size or processes?): resume with the "
                                "same settings, or start a new output directory")
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    # The weights averaged over steps (buffers too: the input statistics), or the model itself.
    average = AveragedModel(model, multi_avg_fn=_ema(config.ema), use_buffers=True) if config.ema else None
    if average is not None and resumed:
        if "ema" not in resumed["train"]:
            raise TrainingError(f"{last} was trained without a weight average: resume with --ema 0")
        average.module.load_state_dict(resumed["train"]["ema"])
        average.n_averaged.fill_(resumed["train"]["ema_steps"])
    kept = model if average is None else average.module

    writer = None
    if lead:
        from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - only rank 0 pays for it
        writer = SummaryWriter(str(out / "tensorboard"), purge_step=step if resumed else None)
    say(f"training on {device} ({world} process{'es' if world > 1 else ''}): {len(dataset)} stretches of "
        f"{config.windows_per_example} windows, {steps_per_epoch} steps per epoch, {total_steps} steps")

    def checkpoint(path: Path, weights: RadarPoseStudent = model) -> None:
        """``weights``: the model to load from ``path``; the training state holds the rest."""
        if lead:
            state = {"step": step, "total_steps": total_steps, "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": torch.get_rng_state()}
            if average is not None:
                state.update(ema=average.module.state_dict(), ema_steps=int(average.n_averaged))
            save_checkpoint(path, weights, train=state, train_config=config.to_dict(),
                            label_topic=config.label_topic, best_val_mpjpe_cm=best)

    best = resumed["best_val_mpjpe_cm"] if resumed else None
    val_cm = best
    bad_steps = skipped = 0
    losses: dict[str, float] = {}
    windows, started = 0, time.perf_counter()
    stopped = False
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not (lead and config.progress_bar),
               dynamic_ncols=True)
    while step < total_steps and not stopped:
        epoch, offset = divmod(step, steps_per_epoch)
        dataset.set_epoch(epoch)
        batches = epoch_batches(len(dataset), config.batch_size, config.seed, epoch, rank, world)[offset:]
        # Its own generator: a loader draws a seed when it starts, which must not move the global
        # random state (dropout's) by more in a resumed run than in an uninterrupted one.
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate,
                                             num_workers=config.workers, pin_memory=device.type == "cuda",
                                             generator=torch.Generator().manual_seed(config.seed + epoch))
        trained.train()
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                pose = trained(batch["points"], batch["mask"])                 # every window of each stretch
            labels = {k: windows_of(v, student_config.window) for k, v in batch.items() if k not in ("points", "mask")}
            terms = pose_losses(pose, labels, joint_set, config.loss)
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(terms["total"]):
                bad_steps, skipped = bad_steps + 1, skipped + 1
                if bad_steps >= MAX_BAD_STEPS:
                    raise TrainingError(f"the loss was not finite for {bad_steps} steps in a row at step {step}: "
                                        f"training diverged (lower --lr?); {last} holds the last good state")
            else:
                bad_steps = 0
                scaler.scale(terms["total"]).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if average is not None:
                    average.update_parameters(model)
            scheduler.step()
            step += 1
            windows += len(labels["labelled"]) * world
            bar.update(1)
            if step % config.log_every == 0 or step == total_steps:
                losses = {k: float(v.detach()) for k, v in terms.items()}
                rate = windows / (time.perf_counter() - started)
                bar.set_postfix(loss=f"{losses['total']:.4f}", joints_cm=f"{100 * losses['joints']:.1f}")
                if writer:
                    for name, value in losses.items():
                        writer.add_scalar(f"loss/{name}", value, step)
                    writer.add_scalar("lr", scheduler.get_last_lr()[0], step)
                    writer.add_scalar("windows_per_s", rate, step)
                if on_progress:
                    on_progress(Progress(step, total_steps, epoch, losses, scheduler.get_last_lr()[0], rate, val_cm))
            if step % config.checkpoint_every == 0:
                checkpoint(last)
            if should_stop and should_stop():
                stopped = True
                break
        if stopped or step % steps_per_epoch:
            continue
        if val_recordings:
            from ros2_radar_pose.train.evaluate import predict_last_frames  # noqa: PLC0415 - avoids a cycle
            pred, truth = predict_last_frames(kept, val_recordings, device=device)
            val_cm = 100 * float(np.nanmean(np.linalg.norm(pred - truth, axis=-1)))
            if writer:
                writer.add_scalar("val/mpjpe_cm", val_cm, step)
            if best is None or val_cm < best:
                best = val_cm
                checkpoint(out / "best.pt", kept)
        checkpoint(last)
    bar.close()
    checkpoint(last)
    final = out / "student.pt"
    if lead and not stopped:
        save_checkpoint(final, kept, train_config=config.to_dict(), label_topic=config.label_topic,
                        best_val_mpjpe_cm=best)
    if writer:
        writer.close()
    rate = windows / max(time.perf_counter() - started, 1e-9)
    if skipped:
        say(f"{skipped} steps were skipped for a non-finite loss")
    say(f"{'stopped at' if stopped else 'finished'} step {step}/{total_steps}: "
        f"{final if not stopped else last} ({rate:.0f} windows/s)")
    return TrainResult(final if not stopped else last, step, losses, rate, val_cm, skipped, stopped)
