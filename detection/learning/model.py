"""The learned model: a small temporal convolution over the keypoint sequence, plus the tabular
features, predicting whether staff would confirm the alert.

Used by detection.learning.train (fit, predict, save) and detection.learning.rescoring (load,
predict). A model file is `torch.save` of plain tensors and numbers ({"format", "config",
"metadata", "state_dict"}), loaded with `weights_only=True`: loading runs no code from the file.
The inputs are standardized inside the model with the training set's means, so a file is all
that is needed to score.
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "shoplift-learned-model-1"


@dataclass(frozen=True)
class TrainConfig:
    hidden: int = 16
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    dropout: float = 0.3
    seed: int = 0


class ModelFileError(ValueError):
    """A model file that is not one this code wrote, or was written for other features."""


class LearnedScorer(nn.Module):
    """(sequence (N, T, C), tabular (N, F)) -> logits (N,) of "confirmed"."""

    seq_mean: torch.Tensor
    seq_std: torch.Tensor
    tab_mean: torch.Tensor
    tab_std: torch.Tensor

    def __init__(self, *, channels: int, steps: int, tabular: int, hidden: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        self.shape = {"channels": channels, "steps": steps, "tabular": tabular, "hidden": hidden, "dropout": dropout}
        self.register_buffer("seq_mean", torch.zeros(channels))
        self.register_buffer("seq_std", torch.ones(channels))
        self.register_buffer("tab_mean", torch.zeros(tabular))
        self.register_buffer("tab_std", torch.ones(tabular))
        self.conv = nn.Sequential(
            nn.Conv1d(channels, hidden, kernel_size=5, padding=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=3, padding=1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden + tabular, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    def forward(self, sequence: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        x = ((sequence - self.seq_mean) / self.seq_std).transpose(1, 2)
        h = self.conv(x)
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        t = (tabular - self.tab_mean) / self.tab_std
        logits: torch.Tensor = self.head(torch.cat([pooled, t], dim=1)).squeeze(1)
        return logits

    def standardize_from(self, sequences: np.ndarray, tabular: np.ndarray) -> None:
        with torch.no_grad():
            flat = torch.from_numpy(sequences.reshape(-1, sequences.shape[-1]))
            tab = torch.from_numpy(tabular)
            self.seq_mean.copy_(flat.mean(dim=0))
            self.seq_std.copy_(flat.std(dim=0).clamp(min=1e-3))
            self.tab_mean.copy_(tab.mean(dim=0))
            self.tab_std.copy_(tab.std(dim=0).clamp(min=1e-3))


def fit(sequences: np.ndarray, tabular: np.ndarray, labels: np.ndarray, config: TrainConfig) -> LearnedScorer:
    """Train a fresh model (seeded: the same data and config give the same model)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    net = LearnedScorer(channels=sequences.shape[2], steps=sequences.shape[1], tabular=tabular.shape[1],
                        hidden=config.hidden, dropout=config.dropout)
    net.standardize_from(sequences, tabular)
    seq, tab = torch.from_numpy(sequences), torch.from_numpy(tabular)
    y = torch.from_numpy(labels.astype(np.float32))
    positives = float(y.sum())
    # Confirmed thefts are the rarer class at most stores: weigh them up to balance the classes.
    pos_weight = torch.tensor((len(y) - positives) / max(positives, 1.0))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    net.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator)
        for begin in range(0, len(y), config.batch_size):
            batch = order[begin:begin + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(net(seq[batch], tab[batch]), y[batch])
            loss.backward()
            optimizer.step()
    net.eval()
    return net


def predict(net: LearnedScorer, sequences: np.ndarray, tabular: np.ndarray) -> np.ndarray:
    """Probabilities of "confirmed", float64 (N,)."""
    net.eval()
    with torch.inference_mode():
        logits = net(torch.from_numpy(np.ascontiguousarray(sequences, dtype=np.float32)),
                     torch.from_numpy(np.ascontiguousarray(tabular, dtype=np.float32)))
        return torch.sigmoid(logits).double().numpy()


def model_bytes(net: LearnedScorer, *, metadata: dict[str, Any], config: TrainConfig | None = None) -> bytes:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "shape": dict(net.shape), "config": asdict(config) if config else {},
                "metadata": metadata, "state_dict": net.state_dict()}, buffer)
    return buffer.getvalue()


def model_from_bytes(data: bytes, *, feature_version: int) -> tuple[LearnedScorer, dict[str, Any]]:
    """The model and its metadata from a file's (already verified) bytes."""
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises assorted types for a file that is not its own
        raise ModelFileError(f"not a model file ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ModelFileError(f"not a {FORMAT} file")
    metadata = saved.get("metadata") or {}
    if metadata.get("feature_version") != feature_version:
        raise ModelFileError(f"trained on features version {metadata.get('feature_version')}, this code computes "
                             f"version {feature_version}: train a new model")
    shape = saved["shape"]
    net = LearnedScorer(channels=int(shape["channels"]), steps=int(shape["steps"]), tabular=int(shape["tabular"]),
                        hidden=int(shape["hidden"]), dropout=float(shape["dropout"]))
    try:
        net.load_state_dict(saved["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise ModelFileError(f"its weights do not fit the model ({exc})") from None
    net.eval()
    return net, dict(metadata)
