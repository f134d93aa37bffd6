"""POP: recommend the items most often interacted with in the training data, to every user.

The floor every learned generator has to clear. Counts come from the training part of the split
only (never the validation or test targets); no gradients, no parameters to learn.
"""

from dataclasses import dataclass

from recbench import hookimpl
from recbench.api import Generator, GeneratorConfig


@dataclass
class PopConfig(GeneratorConfig):
    pass


class Pop(Generator):
    name = "pop"
    description = "Most popular training items, the same list for every user (no training)"
    Config = PopConfig

    def build(self, config, split):
        from recbench_plugins.models.pop import Popularity

        return Popularity(split.n_items)


@hookimpl
def register_generators(register):
    register(Pop())
