"""Helpers for the learned-model tests: reviewed alerts made from simulated tracks, and deployed
models whose score is known in advance."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
from pytest_django.fixtures import Settings

from alerts.models import Alert, ReviewStatus
from cameras.models import Camera, Site, Zone
from detection.learning.features import SEQUENCE_CHANNELS, SEQUENCE_STEPS, TABULAR_FEATURES, describe
from detection.learning.model import LearnedScorer, model_bytes
from detection.learning.simulate import ZONES, SimulatedAlert
from detection.models import LearnedModel
from tests.support.factories import make_alert, make_zone


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tests' models are tiny: one thread trains them faster than two on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def models_dir(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """LEARNED_MODELS_DIR in the test's own folder."""
    folder = tmp_path / "learned-models"
    settings.LEARNED_MODELS_DIR = folder
    yield folder


def simulated_zones(camera: Camera) -> dict[int, Zone]:
    """The simulator's zones drawn on a camera, by the simulator's zone id."""
    return {z.id: make_zone(camera, z.name, kind=z.kind, polygon=[list(p) for p in z.polygon]) for z in ZONES}


def reviewed_alerts(camera: Camera, simulated: Sequence[SimulatedAlert], zone: Zone) -> list[Alert]:
    """One reviewed alert per simulated one, as the detectors and a reviewer would have left it."""
    alerts = []
    for sim in simulated:
        at = datetime.fromtimestamp(sim.event_start, tz=UTC)
        alerts.append(make_alert(camera, zone=zone, at=at, event_type=sim.event_type, score=sim.rule_score,
                                 rule_score=sim.rule_score, track=sim.track,
                                 review_status=ReviewStatus.CONFIRMED if sim.confirmed else ReviewStatus.DISMISSED))
    return alerts


def constant_model_bytes(probability: float) -> bytes:
    """A model file whose model scores every event `probability`."""
    net = LearnedScorer(channels=len(SEQUENCE_CHANNELS), steps=SEQUENCE_STEPS, tabular=len(TABULAR_FEATURES))
    with torch.no_grad():
        last = net.head[-1]
        assert isinstance(last, torch.nn.Linear)
        last.weight.zero_()
        last.bias.fill_(math.log(probability / (1 - probability)))
    return model_bytes(net, metadata=describe())


def deploy_constant_model(site: Site, models_dir: Path, *, probability: float, threshold: float,
                          enabled: bool = True) -> LearnedModel:
    """A deployed model of the site, as train_detector would leave it, that scores every event `probability`."""
    version = (LearnedModel.objects.filter(site=site).count() or 0) + 1
    data = constant_model_bytes(probability)
    file_name = f"site-{site.pk}/v{version}.pt"
    path = models_dir / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    LearnedModel.objects.filter(site=site, deployed=True).update(deployed=False)
    return LearnedModel.objects.create(site=site, version=version, file_name=file_name,
                                       sha256=hashlib.sha256(data).hexdigest(), threshold=threshold, deployed=True,
                                       enabled=enabled, examples=100, confirmed=40, dismissed=60)
