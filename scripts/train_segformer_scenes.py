"""Train the embedded `segformer-scenes` model: a small transformers SegFormer on generated scenes.

Every epoch draws fresh scenes from the seeded generator (aimod.data.scenes, "train" split), so the model
never sees a scene twice; mIoU is measured on held-out "test" scenes. Writes the Hugging Face folder
src/aimod/models/weights/segformer-scenes/ (config.json + model.safetensors) and a report JSON beside it.

Run: python scripts/train_segformer_scenes.py [--epochs 12] [--scenes-per-epoch 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

from aimod.data.scenes import SCENE_CLASSES, make_scenes

OUT = Path(__file__).resolve().parents[1] / "src" / "aimod" / "models" / "weights" / "segformer-scenes"
MEAN, STD = 0.5, 0.25


def build_model() -> SegformerForSemanticSegmentation:
    config = SegformerConfig(
        num_channels=3,
        num_labels=len(SCENE_CLASSES),
        id2label=dict(enumerate(SCENE_CLASSES)),
        label2id={name: i for i, name in enumerate(SCENE_CLASSES)},
        depths=[1, 2, 2, 1],
        hidden_sizes=[32, 64, 128, 192],
        num_attention_heads=[1, 2, 4, 6],
        sr_ratios=[8, 4, 2, 1],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2],
        decoder_hidden_size=128,
        semantic_loss_ignore_index=255,
    )
    return SegformerForSemanticSegmentation(config)


def save_processor(folder: Path) -> None:
    """The preprocessing the model was trained with, as a transformers image processor config."""
    SegformerImageProcessor(
        do_resize=True,
        size={"height": 128, "width": 128},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[MEAN] * 3,
        image_std=[STD] * 3,
        do_reduce_labels=False,
    ).save_pretrained(folder)


def confusion(pred: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    return torch.bincount(target.flatten() * k + pred.flatten(), minlength=k * k).view(k, k)


@torch.no_grad()
def evaluate(model: SegformerForSemanticSegmentation, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    model.eval()
    k = len(SCENE_CLASSES)
    cm = torch.zeros(k, k, dtype=torch.int64)
    for i in range(0, len(images), 64):
        logits = model(pixel_values=(images[i : i + 64] - MEAN) / STD).logits
        up = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        cm += confusion(up.argmax(1), labels[i : i + 64], k)
    tp = cm.diag().double()
    iou = tp / (cm.sum(0) + cm.sum(1) - cm.diag()).double().clamp(min=1)
    return {
        "mIoU": float(iou.mean()),
        "pixel_accuracy": float(tp.sum() / cm.sum()),
        **{f"IoU/{name}": float(v) for name, v in zip(SCENE_CLASSES, iou, strict=True)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--scenes-per-epoch", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--init", type=Path, default=None, help="Continue from a saved model folder.")
    parser.add_argument("--first-scene", type=int, default=0, help="Start of the train scenes (fresh ones).")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = SegformerForSemanticSegmentation.from_pretrained(args.init) if args.init else build_model()
    val_x, val_y = make_scenes(500, split="test")
    # pixel frequencies -> class weights (inverse square root, background damped) against collapse to background
    _, sample_y = make_scenes(500, split="train", start=10_000_000)
    freq = torch.bincount(sample_y.flatten(), minlength=len(SCENE_CLASSES)).double()
    weights = (freq.sum() / freq.clamp(min=1)).sqrt()
    weights = (weights / weights.mean()).float()
    steps = args.epochs * (args.scenes_per_epoch // args.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    start, history = time.perf_counter(), []
    for epoch in range(args.epochs):
        model.train()
        first = args.first_scene + epoch * args.scenes_per_epoch
        images, labels = make_scenes(args.scenes_per_epoch, split="train", start=first)
        for i in range(0, args.scenes_per_epoch - args.batch_size + 1, args.batch_size):
            x, y = images[i : i + args.batch_size], labels[i : i + args.batch_size]
            logits = model(pixel_values=(x - MEAN) / STD).logits
            up = F.interpolate(logits, size=y.shape[-2:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(up, y, weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        metrics = evaluate(model, val_x, val_y)
        history.append(metrics["mIoU"])
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {float(loss.detach()):.3f}, held-out mIoU {metrics['mIoU']:.3f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )

    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT)
    save_processor(OUT)
    report = {
        "model": "SegformerForSemanticSegmentation (transformers), config in config.json",
        "data": "aimod.data.scenes: fresh 'train' scenes every epoch; metrics on 500 held-out 'test' scenes",
        "held_out": metrics,
        "mIoU_by_epoch": history,
        "epochs": args.epochs,
        "continued_from": str(args.init) if args.init else None,
        "first_scene": args.first_scene,
        "scenes_per_epoch": args.scenes_per_epoch,
        "seed": args.seed,
        "train_seconds": round(time.perf_counter() - start, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "normalisation": {"mean": MEAN, "std": STD},
    }
    (OUT.parent / "segformer-scenes.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
