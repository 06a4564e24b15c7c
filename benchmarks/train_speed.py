"""Training throughput (images/s) of the teacher step, the student step with teacher KD, and the
student step alone, on synthetic tensors. A step is forward + loss + backward + optimizer step,
with the same loss terms as ``memgaze-train`` and computed as it computes them
(:class:`memgaze.train.compute.Compute`): channels_last, the precision rule of :mod:`memgaze.train.amp`
(bf16 autocast on GPUs with native bf16, fp16 autocast with a gradient scaler on older ones, fp32 on the CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from memgaze.bench.machine import describe_machine
from memgaze.bench.report import Block, Figure, Heading, Para, Table, plot_bars
from memgaze.bench.timing import fps, summarize, time_interleaved
from memgaze.console import console
from memgaze.errors import fail

USERS = ["generic", "user_a", "user_b", "user_c"]
ROWS = ("teacher", "student (with teacher KD)", "student alone")


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        fail(f"unknown --device {name!r} (auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device {name}: CUDA is not available on this machine")
    return device


def synthetic_batch(batch: int, image_size: int, map_hw: tuple[int, int], seed: int = 0) -> dict[str, Any]:
    """A training batch of random tensors shaped like MemorabilityDataset items (on the CPU)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    heat = torch.rand(batch, 1, *map_hw, generator=g)
    out = {
        "image": torch.randn(batch, 3, image_size, image_size, generator=g),
        "score": torch.rand(batch, generator=g),
        "user": torch.randint(0, len(USERS), (batch,), generator=g),
        "heatmap": heat / heat.sum(dim=(2, 3), keepdim=True),
        "has_heatmap": torch.ones(batch, dtype=torch.bool),
    }
    return out


def _models(image_size: int, compute: Any) -> tuple[Any, Any]:
    from memgaze.train.models import build_model, default_config

    # Random weights: speed does not depend on them, and nothing is downloaded.
    teacher = compute.prepare(build_model(default_config("teacher", image_size=image_size, backbone_weights=None)))
    student = compute.prepare(build_model(default_config("student", image_size=image_size, users=USERS, backbone_weights=None)))
    return teacher, student


def make_steps(teacher: Any, student: Any, b: dict[str, Any], compute: Any) -> dict[str, Callable[[], None]]:
    """One optimizer step per call for each row of ROWS, with memgaze-train's losses
    (``losses.teacher_loss``, ``losses.student_loss``; the student alone: score + gaze terms), under ``compute``'s
    autocast and gradient scaler."""
    import torch

    from memgaze.train import losses

    autocast = compute.autocast
    t_opt = torch.optim.AdamW(teacher.parameters(), lr=1e-4)
    s_opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    scaler = compute.grad_scaler()
    sync = torch.cuda.synchronize if compute.device.type == "cuda" else (lambda: None)

    def update(opt: Any, loss: Any) -> None:
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        sync()

    def teacher_step() -> None:
        teacher.train().requires_grad_(True)
        with autocast():
            score, logits = teacher(b["image"])
        update(t_opt, losses.teacher_loss(score.float(), logits.float(), b)[0])

    def student_kd_step() -> None:
        teacher.eval().requires_grad_(False)  # frozen, as in the student stage
        with torch.no_grad(), autocast():
            t_score, t_logits = teacher(b["image"])
        student.train()
        with autocast():
            score, logits = student(b["image"], b["user"])
        update(s_opt, losses.student_loss(score.float(), logits.float(), t_score.float(), t_logits.float(), b)[0])

    def student_alone_step() -> None:
        student.train()
        with autocast():
            score, logits = student(b["image"], b["user"])
        loss = losses.score_loss(score.float(), b["score"]) + losses.map_loss(logits.float(), b["heatmap"], b["has_heatmap"])
        update(s_opt, loss)

    return dict(zip(ROWS, (teacher_step, student_kd_step, student_alone_step)))


def run_train_speed(image_size: int = 224, batch: int = 16, steps: int = 10, warmup: int = 2,
                    device: str = "auto") -> dict[str, Any]:
    """Measure the three training steps interleaved; the ``train.json`` document (see README)."""
    import torch

    from memgaze.train.compute import make_compute
    from memgaze.train.distributed import DistContext
    from memgaze.train.models import count_macs, count_params, map_size

    hw = map_size(image_size)  # one-line error unless a multiple of the models' coarsest stride
    if batch < 1 or steps < 1 or warmup < 0:
        fail("--batch and --steps must be >= 1, --warmup >= 0")
    compute = make_compute(DistContext(device=_device(device)), "auto", 0, 0)
    dev, amp = compute.device, compute.precision.label
    torch.manual_seed(0)
    teacher, student = _models(image_size, compute)
    b = compute.to_device(synthetic_batch(batch, image_size, hw))
    fns = make_steps(teacher, student, b, compute)
    console.print(f"timing {len(fns)} training steps × {steps} on {dev} (batch {batch}, {image_size} px, {amp}, channels_last)")
    samples = time_interleaved(fns, iters=steps, warmup=warmup, rounds=min(steps, 3))
    params = {"teacher": count_params(teacher), "student": count_params(student)}
    macs = {"teacher": count_macs(teacher.cpu(), image_size), "student": count_macs(student.cpu(), image_size)}
    rows = []
    for name, times in samples.items():
        stats = summarize(times)
        rows.append({"step": name, "batch": batch, "image_size": image_size, **stats,
                     "images_per_s": fps(batch, stats["mean_ms"])})
    return {
        "machine": describe_machine(),
        "rows": rows,
        "settings": {"device": str(dev), "amp": amp, "memory_format": "channels_last", "batch": batch, "image_size": image_size, "steps": steps,
                     "warmup": warmup, "optimizer": "AdamW", "data": "synthetic tensors",
                     "threads": torch.get_num_threads()},
        "models": {"params": params, "macs": macs, "macs_ratio": macs["teacher"] / max(1, macs["student"])},
    }


def section(result: dict[str, Any], folder: Path) -> list[Block]:
    """Report blocks for a training-speed result; writes ``train_speed.png`` into ``folder``."""
    s, m = result["settings"], result["models"]
    rows = result["rows"]
    plot_bars([r["step"] for r in rows], [r["images_per_s"] for r in rows], folder / "train_speed.png",
              "training images / s (higher is better)", f"Training throughput on {s['device']} ({s['amp']})")
    by = {r["step"]: r for r in rows}
    ratio = by[ROWS[2]]["images_per_s"] / by[ROWS[1]]["images_per_s"] if ROWS[1] in by and ROWS[2] in by else None
    return [
        Heading("Training speed"),
        Para(f"One step = forward + loss + backward + {s['optimizer']} step on {s['data']}, batch {s['batch']} at "
             f"{s['image_size']}×{s['image_size']}, {s['device']} ({s['amp']}, {s.get('memory_format', 'contiguous')}, "
             f"{s['threads']} threads), "
             f"{s['steps']} timed steps after {s['warmup']} warm-up, interleaved. The KD step includes the frozen "
             "teacher's forward pass."),
        Table(["step", "batch", "p50 ms", "p90 ms", "mean ms", "std ms", "images/s"],
              [[r["step"], r["batch"], r["p50_ms"], r["p90_ms"], r["mean_ms"], r["std_ms"], r["images_per_s"]]
               for r in rows]),
        Table(["model", "parameters", "MACs / image"],
              [["teacher", m["params"]["teacher"], m["macs"]["teacher"]],
               ["student", m["params"]["student"], m["macs"]["student"]],
               ["teacher / student", m["params"]["teacher"] / max(1, m["params"]["student"]), m["macs_ratio"]]]),
        Para(f"The teacher forward inside KD costs the student step "
             f"{(1 - 1 / ratio) * 100:.0f}% of its throughput." if ratio else "—"),
        Figure("train_speed.png", "Training throughput (images/s)"),
    ]
