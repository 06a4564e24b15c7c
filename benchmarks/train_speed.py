"""Training throughput (images/s) of the teacher step, the student step with teacher KD, and the
student step alone, on synthetic tensors. A step is forward + loss + backward + optimizer step,
with the same loss terms as ``memgaze-train``."""

from __future__ import annotations

import contextlib
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


def synthetic_batch(batch: int, image_size: int, map_size: int, device: Any, seed: int = 0) -> dict[str, Any]:
    """A training batch of random tensors shaped like MemorabilityDataset items."""
    import torch

    g = torch.Generator().manual_seed(seed)
    heat = torch.rand(batch, 1, map_size, map_size, generator=g)
    out = {
        "image": torch.randn(batch, 3, image_size, image_size, generator=g),
        "score": torch.rand(batch, generator=g),
        "user": torch.randint(0, len(USERS), (batch,), generator=g),
        "heatmap": heat / heat.sum(dim=(2, 3), keepdim=True),
        "has_heatmap": torch.ones(batch, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in out.items()}


def _models(image_size: int, device: Any) -> tuple[Any, Any]:
    from memgaze.train.models import build_model, default_config

    # Random weights: speed does not depend on them, and nothing is downloaded.
    teacher = build_model(default_config("teacher", image_size=image_size, backbone_weights=None)).to(device)
    student = build_model(default_config("student", image_size=image_size, users=USERS, backbone_weights=None)).to(device)
    return teacher, student


def _amp(device: Any) -> tuple[Callable[[], Any], str]:
    """Autocast as memgaze-train's ``amp auto`` on CUDA (bf16 where supported); fp32 on CPU."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), "bf16 autocast"
    return contextlib.nullcontext, "fp32"


def make_steps(teacher: Any, student: Any, b: dict[str, Any], device: Any) -> tuple[dict[str, Callable[[], None]], str]:
    """One optimizer step per call for each row of ROWS, with memgaze-train's losses
    (``losses.teacher_loss``, ``losses.student_loss``; the student alone: score + gaze terms)."""
    import torch

    from memgaze.train import losses

    autocast, amp = _amp(device)
    t_opt = torch.optim.AdamW(teacher.parameters(), lr=1e-4)
    s_opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def update(opt: Any, loss: Any) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
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

    return dict(zip(ROWS, (teacher_step, student_kd_step, student_alone_step))), amp


def run_train_speed(image_size: int = 224, batch: int = 16, steps: int = 10, warmup: int = 2,
                    device: str = "auto") -> dict[str, Any]:
    """Measure the three training steps interleaved; the ``train.json`` document (see README)."""
    import torch

    from memgaze.train.models import count_macs, count_params

    if image_size < 32 or image_size % 8:
        fail("--image-size must be a multiple of 8 and at least 32")
    if batch < 1 or steps < 1 or warmup < 0:
        fail("--batch and --steps must be >= 1, --warmup >= 0")
    dev = _device(device)
    torch.manual_seed(0)
    teacher, student = _models(image_size, dev)
    b = synthetic_batch(batch, image_size, image_size // 8, dev)
    fns, amp = make_steps(teacher, student, b, dev)
    console.print(f"timing {len(fns)} training steps × {steps} on {dev} (batch {batch}, {image_size} px, {amp})")
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
        "settings": {"device": str(dev), "amp": amp, "batch": batch, "image_size": image_size, "steps": steps,
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
             f"{s['image_size']}×{s['image_size']}, {s['device']} ({s['amp']}, {s['threads']} threads), "
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
