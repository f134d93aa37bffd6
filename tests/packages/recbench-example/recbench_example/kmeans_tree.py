"""A k-means tree: semantic IDs by hierarchical clustering.

As DSI builds its semantic document ids (Tay et al., "Transformer Memory as a Differentiable
Search Index", NeurIPS 2022): k-means splits the training items into codebook_size clusters, the
items of each cluster are split again, and so on, n_digit levels deep; a node with at most
codebook_size items gives each its own child, and a node with one item has none. An item's digit
d is the nearest child of the node its first d - 1 digits lead to (0 below a node without
children), so what a digit means depends on the digits before it.

The core needs only `encode` and `decode`: it measures the error of each digit with `decode`, and
ranks the free codes for an item whose ID collides with the interface's default
`last_digit_errors`, which decodes every alternative.
"""

import faiss
import numpy as np

from recbench.api import Quantizer, Tokenizer
from recbench.errors import UsageError

NITER = 25  # k-means iterations


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centroid."""
    return faiss.knn(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(centroids, dtype=np.float32), 1)[1][:, 0]


class KMeansTree(Quantizer):
    """Nodes by number, the root 0: `centroids[node]` is what the node reconstructs (the root: zeros),
    `children[node, code]` the node that `code` leads to from `node` (-1: none)."""

    def __init__(self, centroids: np.ndarray, children: np.ndarray, n_digit: int):
        self.centroids, self.children, self.n_digit = centroids, children, n_digit
        self.codebook_size = children.shape[1]

    def encode(self, x):
        codes = np.zeros((len(x), self.n_digit), dtype=np.int64)
        node = np.zeros(len(x), dtype=np.int64)
        for d in range(self.n_digit):  # descend greedily: the nearest child at each level
            for parent in np.unique(node):
                kids = self.children[parent][self.children[parent] >= 0]
                if len(kids):
                    rows = np.flatnonzero(node == parent)
                    codes[rows, d] = nearest(x[rows], self.centroids[kids])
                    node[rows] = kids[codes[rows, d]]
        return codes

    def decode(self, codes, digits=None):
        node = np.zeros(len(codes), dtype=np.int64)
        found = np.ones(len(codes), dtype=bool)  # false from the first code that leads nowhere: stay at its parent
        for d in range(self.n_digit if digits is None else digits):
            child = self.children[node, codes[:, d]]
            found &= child >= 0
            node = np.where(found, child, node)
        return self.centroids[node]

    def parameters(self):
        return {"centroids": self.centroids, "children": self.children}


def cluster(x: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
    """(centroids, the cluster of each row): k-means into codebook_size clusters, or each row its own."""
    if len(x) <= config.codebook_size:
        return x, np.arange(len(x))
    kmeans = faiss.Kmeans(x.shape[1], config.codebook_size, niter=NITER, seed=config.seed, min_points_per_centroid=1)
    kmeans.train(x)
    return kmeans.centroids, nearest(x, kmeans.centroids)


class KMeansTreeTokenizer(Tokenizer):
    name = "kmeans_tree"
    description = "Hierarchical k-means: each digit clusters the items of its parent's cluster (as in DSI; example plugin)"

    def check(self, config, dim, n_train):
        super().check(config, dim, n_train)  # codebook_size <= n_train
        if config.n_digit < 1:
            raise UsageError(f"n_digit={config.n_digit}: {self.name} needs at least one digit.")

    def fit(self, x, config):
        centroids = [np.zeros(x.shape[1], dtype=np.float32)]  # node 0, the root
        children = []  # per node, in node order: the nodes of its children, in code order
        nodes = [(np.arange(len(x)), 0)]  # per node: (its training rows, its depth); grows as the tree does
        for rows, depth in nodes:
            kids = []
            if depth < config.n_digit and len(rows) > 1:
                means, assigned = cluster(x[rows], config)
                for code, mean in enumerate(means):
                    kids.append(len(centroids))
                    centroids.append(mean)
                    nodes.append((rows[assigned == code], depth + 1))
            children.append(kids)
        table = np.full((len(centroids), config.codebook_size), -1, dtype=np.int64)
        for node, kids in enumerate(children):
            table[node, : len(kids)] = kids
        return KMeansTree(np.stack(centroids), table, config.n_digit)
