"""Prototype bank: relations, grounding, enrichment."""

from __future__ import annotations

import torch
from affectkit_mpcl.prototypes import PrototypeBank

K, P, D = 5, 3, 16


def test_embedding_equal_to_prototype_grounds_to_its_emotion():
    torch.manual_seed(0)
    bank = PrototypeBank(dim=D, num_emotions=K, per_emotion=P, tau=0.1)
    z = bank.bank.detach().clone()  # row k·P + p = prototype p of emotion k
    e = bank.emotions(bank.attend(z))
    assert e.shape == (K * P, K)
    torch.testing.assert_close(e.sum(-1), torch.ones(K * P))
    assert torch.equal(e.argmax(-1), torch.arange(K).repeat_interleave(P))


def test_grounding_loss_prefers_the_matching_emotion():
    torch.manual_seed(1)
    bank = PrototypeBank(dim=D, num_emotions=K, per_emotion=P)
    a = bank.attend(bank.bank[:P].detach())  # embeddings of emotion 0's prototypes
    right = torch.nn.functional.one_hot(torch.zeros(P, dtype=torch.long), K).float()
    wrong = torch.nn.functional.one_hot(torch.ones(P, dtype=torch.long), K).float()
    assert bank.grounding_loss(a, right) < bank.grounding_loss(a, wrong)


def test_enriched_representation_mixes_prototypes():
    torch.manual_seed(2)
    bank = PrototypeBank(dim=D, num_emotions=K, per_emotion=P, mix=1.0)
    z = torch.randn(4, D)
    a = bank.attend(z)
    ln = bank.norm
    expected = torch.nn.functional.layer_norm(z + a @ bank.bank, (D,), ln.weight, ln.bias)
    torch.testing.assert_close(bank(z), expected)
    no_mix = PrototypeBank(dim=D, num_emotions=K, per_emotion=P, mix=0.0)
    torch.testing.assert_close(no_mix(z), torch.nn.functional.layer_norm(z, (D,)))


def test_dot_similarity_and_temperature():
    torch.manual_seed(3)
    sharp = PrototypeBank(dim=D, num_emotions=K, per_emotion=P, tau=0.01)
    soft = PrototypeBank(dim=D, num_emotions=K, per_emotion=P, tau=10.0)
    soft.prototypes.data = sharp.prototypes.data.clone()
    z = torch.randn(6, D)
    ent = lambda a: -(a * a.clamp_min(1e-12).log()).sum(-1)  # noqa: E731
    assert (ent(sharp.attend(z)) < ent(soft.attend(z))).all()
    dot = PrototypeBank(dim=D, num_emotions=K, per_emotion=P, similarity="dot")
    torch.testing.assert_close(dot.scores(z), z @ dot.bank.T / D**0.5)
