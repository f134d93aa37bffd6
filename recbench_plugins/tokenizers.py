"""Semantic-ID tokenizers over item-text embeddings, built on faiss: PQ, OPQ and RQ.

- `pq`, product quantization (Jégou, Douze & Schmid, "Product Quantization for Nearest Neighbor
  Search", TPAMI 2011): the vector is cut into `n_digit` equal sub-vectors and each is k-means
  quantized on its own (faiss ProductQuantizer). The digits are parallel: none depends on another.
- `opq`, optimized product quantization (Ge, He, Ke & Sun, "Optimized Product Quantization",
  CVPR 2013): a learned orthonormal rotation (faiss OPQMatrix) balances the sub-spaces, then PQ on
  the rotated vectors. DIFF_GRM's default quantizer (DiffGRM, arXiv 2510.21805).
- `rq`, residual quantization by k-means per level (RQ-KMeans, the simple variant of TIGER's RQ-VAE;
  Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023): digit 1 is the
  nearest k-means centroid of the vector, digit 2 that of the residual, and so on (faiss Kmeans).

The core fits them on the training items' vectors only (with faiss single-threaded), encodes
every item and makes the IDs unique (recbench.semantic_ids). Every k-means here is seeded from the
config's `seed`, so a fit is deterministic for a seed. OPQ's own initial rotation is faiss's fixed
random one; the seed moves its k-means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recbench import hookimpl
from recbench.api import Quantizer, Tokenizer, TokenizerConfig
from recbench.errors import UsageError

KMEANS_NITER = 25  # faiss's default k-means iterations, for every tokenizer alike


@dataclass
class KMeansConfig(TokenizerConfig):
    """TokenizerConfig with the help text of these tokenizers' seed (the base's is generic)."""

    seed: int = 0  # seeds k-means (rq: seed + d at digit d; opq: its k-means, the rotation starts from faiss's fixed one); a fit is deterministic for a seed


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centroid (exact L2 search), int64."""
    import faiss

    _, idx = faiss.knn(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(centroids, dtype=np.float32), 1)
    return idx[:, 0].astype(np.int64)


class Additive(Quantizer):
    """A quantizer whose reconstruction is a sum of one codeword per digit (PQ, OPQ, RQ)."""

    def codewords(self, digit: int) -> np.ndarray:
        """[codebook_size, dim]: what each code of `digit` (0-based) adds to a reconstruction, in the input space."""
        raise NotImplementedError

    def decode(self, codes, digits=None):
        digits = self.n_digit if digits is None else digits
        out = np.zeros((len(codes), self.codewords(0).shape[1]), dtype=np.float32)
        for d in range(digits):
            out += self.codewords(d)[codes[:, d]]
        return out

    def last_digit_errors(self, x, codes):
        last = self.n_digit - 1
        residual = x - self.decode(codes, last)
        words = self.codewords(last)
        return ((residual**2).sum(1, keepdims=True) - 2 * residual @ words.T + (words**2).sum(1)[None, :]).clip(min=0)


class ProductQuantizer(Additive):
    """PQ codebooks [n_digit, codebook_size, dim / n_digit], after an optional rotation [dim, dim]."""

    def __init__(self, centroids: np.ndarray, rotation: np.ndarray | None = None):
        self.centroids = centroids
        self.rotation = rotation
        self.n_digit, self.codebook_size, self.dsub = centroids.shape

    def rotate(self, x: np.ndarray) -> np.ndarray:
        return x if self.rotation is None else x @ self.rotation.T

    def encode(self, x):
        y = self.rotate(x)
        parts = [y[:, d * self.dsub:(d + 1) * self.dsub] for d in range(self.n_digit)]
        return np.stack([nearest(part, self.centroids[d]) for d, part in enumerate(parts)], axis=1)

    def codewords(self, digit):
        words = np.zeros((self.codebook_size, self.n_digit * self.dsub), dtype=np.float32)
        words[:, digit * self.dsub:(digit + 1) * self.dsub] = self.centroids[digit]
        return words if self.rotation is None else words @ self.rotation  # rotated back: x = R^T y

    def parameters(self):
        return {"centroids": self.centroids} | ({} if self.rotation is None else {"rotation": self.rotation})


class ResidualQuantizer(Additive):
    """RQ codebooks [n_digit, codebook_size, dim], one per level of residuals."""

    def __init__(self, centroids: np.ndarray):
        self.centroids = centroids
        self.n_digit, self.codebook_size, _ = centroids.shape

    def encode(self, x):
        residual = np.array(x, dtype=np.float32)
        codes = np.empty((len(x), self.n_digit), dtype=np.int64)
        for d in range(self.n_digit):
            codes[:, d] = nearest(residual, self.centroids[d])
            residual -= self.centroids[d][codes[:, d]]
        return codes

    def codewords(self, digit):
        return self.centroids[digit]

    def parameters(self):
        return {"centroids": self.centroids}


def train_pq(x: np.ndarray, config) -> np.ndarray:
    """PQ centroids [n_digit, codebook_size, dsub] of `x`, seeded."""
    import faiss

    pq = faiss.ProductQuantizer(x.shape[1], config.n_digit, config.codebook_size.bit_length() - 1)
    seed_clustering(pq.cp, config.seed)
    pq.train(np.ascontiguousarray(x, dtype=np.float32))
    return faiss.vector_to_array(pq.centroids).reshape(config.n_digit, config.codebook_size, -1)


def seed_clustering(cp, seed: int) -> None:
    cp.seed = seed
    cp.niter = KMEANS_NITER
    cp.min_points_per_centroid = 1  # enough points is checked up front; this only silences faiss's warning


class PQ(Tokenizer):
    name = "pq"
    description = "Product quantization: n_digit parallel sub-vector k-means codebooks (Jégou et al. 2011; faiss)"
    Config = KMeansConfig

    def check(self, config, dim, n_train):
        super().check(config, dim, n_train)
        if dim % config.n_digit:
            divisors = [m for m in range(1, dim + 1) if dim % m == 0 and m <= 16]
            raise UsageError(f"n_digit={config.n_digit} does not divide the embedding dimension {dim}: {self.name} cuts "
                             f"the vector into n_digit equal parts. Use one of {divisors} (or change sent_emb_pca).")
        size = config.codebook_size
        if size & (size - 1) or size > 1 << 16:
            raise UsageError(f"codebook_size={size}: {self.name} (faiss ProductQuantizer) needs a power of two up to 65536, "
                             "such as 256.")

    def fit(self, x, config):
        return ProductQuantizer(train_pq(x, config))


class OPQ(PQ):
    name = "opq"
    description = "Optimized PQ: a learned rotation, then PQ (Ge et al. 2013; faiss OPQMatrix); DIFF_GRM's default"

    def fit(self, x, config):
        import faiss

        x = np.ascontiguousarray(x, dtype=np.float32)
        opq = faiss.OPQMatrix(x.shape[1], config.n_digit)
        inner = faiss.ProductQuantizer(x.shape[1], config.n_digit, config.codebook_size.bit_length() - 1)
        seed_clustering(inner.cp, config.seed)
        opq.pq = inner  # OPQ alternates this PQ with the rotation; `inner` must outlive the training
        opq.train(x)
        rotation = faiss.vector_to_array(opq.A).reshape(x.shape[1], x.shape[1])
        return ProductQuantizer(train_pq(x @ rotation.T, config), rotation)  # a PQ fitted to the final rotation


class RQ(Tokenizer):
    name = "rq"
    description = "Residual quantization: k-means on the vector, then on each residual (RQ-KMeans, as in TIGER; faiss)"
    Config = KMeansConfig

    def fit(self, x, config):
        import faiss

        residual = np.array(x, dtype=np.float32)
        levels = []
        for d in range(config.n_digit):
            kmeans = faiss.Kmeans(residual.shape[1], config.codebook_size, niter=KMEANS_NITER, seed=config.seed + d,
                                  min_points_per_centroid=1)
            kmeans.train(residual)
            levels.append(kmeans.centroids.copy())
            residual -= levels[-1][nearest(residual, levels[-1])]
        return ResidualQuantizer(np.stack(levels))


@hookimpl
def register_tokenizers(register):
    register(PQ())
    register(OPQ())
    register(RQ())

