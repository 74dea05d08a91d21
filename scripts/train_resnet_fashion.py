"""Train the embedded `resnet-fashion` model: ResNet-20 (CIFAR-style) on the real Fashion-MNIST data.

Needs the training split: `apt-get install dataset-fashion-mnist` (or AIMOD_FASHION_MNIST=<folder with the
four .gz files>). Writes src/aimod/models/weights/resnet-fashion.safetensors and resnet-fashion.json (test
accuracy, epochs, time, seed). Deterministic for a given seed and thread count.

Run: python scripts/train_resnet_fashion.py [--epochs 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from aimod.data.fashion_mnist import load_fashion_mnist
from aimod.models.resnet import resnet_cifar

MEAN, STD = 0.2860, 0.3530
OUT = Path(__file__).resolve().parents[1] / "src" / "aimod" / "models" / "weights"


def normalise(images: torch.Tensor) -> torch.Tensor:
    return (images.float().unsqueeze(1) / 255 - MEAN) / STD


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with 2-pixel padding and horizontal flip, per image, vectorised."""
    b = x.shape[0]
    padded = nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    dx, dy = torch.randint(0, 5, (2, b), generator=gen)
    rows = (dy[:, None] + torch.arange(28))[:, None, :, None].expand(b, 1, 28, 32)
    x = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(28))[:, None, None, :].expand(b, 1, 28, 28)
    x = x.gather(3, cols)
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum()) for i in range(0, len(x), 1000))
    return correct / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train_x, train_y = load_fashion_mnist("train")
    test_x, test_y = load_fashion_mnist("test")
    train_x, test_x = normalise(train_x), normalise(test_x)
    model = resnet_cifar(args.depth)
    steps = args.epochs * ((len(train_x) + args.batch_size - 1) // args.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=gen)
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            loss = loss_fn(model(augment(train_x[idx], gen)), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        accuracy = evaluate(model, test_x, test_y)
        history.append(accuracy)
        print(
            f"epoch {epoch + 1}/{args.epochs}: test accuracy {100 * accuracy:.2f} % "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )

    OUT.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(OUT / "resnet-fashion.safetensors"), metadata={"depth": str(args.depth)})
    report = {
        "model": f"ResNet-{args.depth} (CIFAR-style)",
        "data": "Fashion-MNIST (60,000 train / 10,000 test)",
        "test_accuracy": history[-1],
        "accuracy_by_epoch": history,
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": round(time.perf_counter() - start, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "normalisation": {"mean": MEAN, "std": STD},
    }
    (OUT / "resnet-fashion.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
