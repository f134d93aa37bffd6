"""An example recbench plugin: a trainable generator (GRU4Rec) and a semantic-ID tokenizer (a k-means tree)."""

from recbench import hookimpl

from .gru4rec import GRU4RecGenerator
from .kmeans_tree import KMeansTreeTokenizer


@hookimpl
def register_generators(register):
    register(GRU4RecGenerator())


@hookimpl
def register_tokenizers(register):
    register(KMeansTreeTokenizer())
