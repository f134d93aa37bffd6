"""An example recbench plugin: a trainable generator (GRU4Rec), a semantic-ID tokenizer (a k-means
tree) and a dataset read from your own CSV files."""

from recbench import hookimpl

from .events import Events
from .gru4rec import GRU4RecGenerator
from .kmeans_tree import KMeansTreeTokenizer


@hookimpl
def register_generators(register):
    register(GRU4RecGenerator())


@hookimpl
def register_tokenizers(register):
    register(KMeansTreeTokenizer())


@hookimpl
def register_datasets(register):
    register(Events())
