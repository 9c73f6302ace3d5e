"""AddAnchorDistances on PyG data, and NodeTokenizer shapes and pretraining."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from structlm.graph import AddAnchorDistances, anchor_distances, select_anchors
from structlm.graph.tokens import NodeTokenizer, rank_margin_loss, spearman


def karate_data():
    from torch_geometric.utils import from_networkx

    graph = nx.karate_club_graph()
    data = from_networkx(graph)
    data.x = torch.ones(graph.number_of_nodes(), 3)
    return graph, data


def test_transform_adds_distances_and_anchors():
    from torch_geometric.transforms import BaseTransform

    graph, data = karate_data()
    transform = AddAnchorDistances(radius=1, coverage=1.0)
    assert isinstance(transform, BaseTransform)
    out = transform(data.clone())
    anchors = select_anchors(graph, radius=1, coverage=1.0)
    assert out.anchor_index.tolist() == list(anchors)
    assert out.anchor_pe.shape == (34, len(anchors)) and out.anchor_pe.dtype == torch.float32
    np.testing.assert_array_equal(out.anchor_pe.numpy(), anchor_distances(graph, anchors))
    assert "AddAnchorDistances(radius=1" in repr(transform)


def test_transform_concatenates_to_x_and_survives_batching():
    from torch_geometric.data import Batch

    _, data = karate_data()
    out = AddAnchorDistances(radius=2, coverage=0.9, attr_name=None)(data.clone())
    assert out.x.shape == (34, 3 + len(out.anchor_index))
    batch = Batch.from_data_list([out, out])
    assert batch.anchor_index.tolist() == out.anchor_index.tolist() + (out.anchor_index + 34).tolist()


def test_transform_on_directed_pyg_data_with_isolated_nodes():
    from torch_geometric.data import Data

    data = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=4)
    out = AddAnchorDistances(radius=1, coverage=1.0, unreachable=float("inf"))(data)
    assert out.anchor_index.tolist() == [0, 1, 3]  # 0 covers 0->1, then 1 covers 1->2 (ties: smaller id)
    assert torch.isinf(out.anchor_pe[3, 0]) and out.anchor_pe[3, 2] == 0
    undirected = AddAnchorDistances(radius=1, coverage=1.0, directed=False)(data.clone())
    assert undirected.anchor_index.tolist() == [1, 3]
    with pytest.raises(ValueError, match="needs data.edge_index"):
        AddAnchorDistances()(Data(num_nodes=3))


def test_transform_options_reach_the_selection():
    graph, data = karate_data()
    out = AddAnchorDistances(radius=1, coverage=1.0, max_anchors=2, seed=3, max_distance=1,
                             attr_name="pe", anchors_attr="pe_anchor_index")(data.clone())
    anchors = select_anchors(graph, radius=1, coverage=1.0, max_anchors=2, seed=3)
    assert out.pe_anchor_index.tolist() == list(anchors)
    np.testing.assert_array_equal(out.pe.numpy(), anchor_distances(graph, anchors, max_distance=1))


def test_node_tokenizer_shapes_and_normalisation():
    tokenizer = NodeTokenizer(num_anchors=4, hidden_size=32, tokens_per_node=3, embed_dim=16, max_distance=3)
    distances = np.array([[0, 1, 2, -1], [9999, 3, 4, 1]])
    assert tokenizer(distances).shape == (2, 3, 32)
    assert tokenizer(torch.tensor([0.0, 1.0, float("inf"), 2.0])).shape == (1, 3, 32)
    assert tokenizer.embed(distances).shape == (2, 16)
    normal = tokenizer.normalize(distances)
    assert normal[0].tolist() == [0.0, 0.25, 0.5, 1.0] and normal[1].tolist() == [1.0, 0.75, 1.0, 0.25]
    with pytest.raises(ValueError, match=r"expected distances \[num_nodes, 4\]"):
        tokenizer(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        NodeTokenizer(4, 0)


def test_rank_margin_loss_is_zero_only_when_the_order_holds():
    u = torch.zeros(1, 2)
    near, far = torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    assert rank_margin_loss(u, near, far, margin=0.5).item() == 0.0
    assert rank_margin_loss(u, far, near, margin=0.5).item() == pytest.approx(2.5)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)


def test_fit_lowers_the_loss_and_raises_spearman():
    torch.manual_seed(0)
    graph = nx.grid_2d_graph(10, 10)
    anchors = select_anchors(graph, radius=1, coverage=1.0)
    distances = anchor_distances(graph, anchors)
    tokenizer = NodeTokenizer(len(anchors), hidden_size=16, embed_dim=32)
    report = tokenizer.fit(graph, distances, steps=60, batch_size=256, num_sources=24, progress=False)
    assert len(report.losses) == 60
    assert np.mean(report.losses[-10:]) < 0.5 * np.mean(report.losses[:10])
    assert report.spearman_after > report.spearman_before and report.spearman_after > 0.8
    assert report.heldout_pairs > 0 and "Spearman" in str(report)
    with pytest.raises(ValueError, match="rows but the graph has"):
        tokenizer.fit(graph, distances[:5], steps=1, progress=False)
