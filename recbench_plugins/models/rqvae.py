"""The RQ-VAE network, its trained quantizer and its fit; the method, its settings and where it
departs from the paper: recbench_plugins.rqvae."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recbench.api import Quantizer, TokenizerConfig
from recbench_plugins.rqvae import RQVAEConfig
from recbench_plugins.tokenizers import RQ

ENCODE_BATCH = 8192  # rows per forward pass when encoding (memory only; the result does not depend on it)


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers through `widths`, ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def nearest(r: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of each row's nearest codeword (squared L2; ties to the lower index)."""
    distance = (r**2).sum(1, keepdim=True) - 2 * r @ codebook.T + (codebook**2).sum(1)[None, :]
    return distance.argmin(1)


class RQVAEModel(nn.Module):
    """Encoder, `levels` residual codebooks ([levels, codebook_size, latent_dim]) and decoder."""

    def __init__(self, dim: int, config: RQVAEConfig):
        super().__init__()
        widths = [dim, *config.hidden, config.latent_dim]
        self.encoder = mlp(widths)
        self.decoder = mlp(widths[::-1])
        self.centroids = nn.Parameter(torch.zeros(config.n_digit - 1, config.codebook_size, config.latent_dim))
        self.beta = config.beta

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(codes [n, levels], the codewords' sum [n, latent], RQ loss per row [n]) of latents z."""
        residual, total, loss, codes = z, torch.zeros_like(z), z.new_zeros(len(z)), []
        for codebook in self.centroids:
            code = nearest(residual.detach(), codebook.detach())
            word = codebook[code]
            loss = loss + ((residual.detach() - word) ** 2).sum(1) + self.beta * ((residual - word.detach()) ** 2).sum(1)
            residual = residual - word.detach()
            total = total + word.detach()
            codes.append(code)
        return torch.stack(codes, 1), total, loss

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The batch's mean of ||x - x_hat||^2 + the RQ loss."""
        z = self.encoder(x)
        _, quantized, rq_loss = self.quantize(z)
        x_hat = self.decoder(z + (quantized - z).detach())  # straight-through: the gradient reaches z
        return (((x_hat - x) ** 2).sum(1) + rq_loss).mean()

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, config: RQVAEConfig) -> None:
        """The codebooks by residual k-means (the `rq` tokenizer) of the latents of `x`."""
        levels = TokenizerConfig(n_digit=len(self.centroids), codebook_size=config.codebook_size, seed=config.seed)
        z = self.encoder(x).numpy()
        self.centroids.copy_(torch.from_numpy(RQ().fit(z, levels).centroids))


class RQVAEQuantizer(Quantizer):
    """A trained RQ-VAE: n_digit-1 learned levels, then the extra digit (encoded 0, decoded as nothing)."""

    def __init__(self, model: RQVAEModel, losses: list[float]):
        self.model = model.eval()
        self.levels, self.codebook_size, _ = model.centroids.shape
        self.n_digit = self.levels + 1
        self.losses = losses  # mean training loss per epoch

    @torch.no_grad()
    def encode(self, x):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        codes = np.zeros((len(x), self.n_digit), dtype=np.int64)
        for i in range(0, len(x), ENCODE_BATCH):
            codes[i:i + ENCODE_BATCH, :-1] = self.model.quantize(self.model.encoder(x[i:i + ENCODE_BATCH]))[0].numpy()
        return codes

    @torch.no_grad()
    def decode(self, codes, digits=None):
        levels = min(self.n_digit if digits is None else digits, self.levels)
        dim = self.model.decoder[-1].out_features
        if levels == 0:
            return np.zeros((len(codes), dim), dtype=np.float32)
        codes = torch.from_numpy(np.asarray(codes, dtype=np.int64))
        latent = sum(self.model.centroids[d][codes[:, d]] for d in range(levels))
        return self.model.decoder(latent).numpy()

    def parameters(self):
        return {name: value.detach().numpy().copy() for name, value in self.model.state_dict().items()}


def make_optimizer(model: nn.Module, config: RQVAEConfig) -> torch.optim.Optimizer:
    if config.vae_optimizer == "adagrad":  # TensorFlow's initial accumulator: torch's 0 makes the first step +-lr for every weight
        return torch.optim.Adagrad(model.parameters(), lr=config.vae_lr, initial_accumulator_value=0.1)
    return torch.optim.AdamW(model.parameters(), lr=config.vae_lr, weight_decay=config.vae_weight_decay)


def progress_bar():
    """Epoch and loss: a rich bar on a terminal, a plain line every 30 s (and at the end) elsewhere."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from recbench.progress import bar

    def line(task) -> str:
        return f"rqvae epoch {task.completed:.0f}/{task.total:.0f}: loss {task.fields['loss']:.4f}, {task.elapsed:,.0f} s"

    return bar(TextColumn("rqvae epoch"), MofNCompleteColumn(), BarColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
               TimeElapsedColumn(), line=line)


def fit(x: np.ndarray, config: RQVAEConfig, checkpoint=None) -> RQVAEQuantizer:
    """The `rqvae` tokenizer's fit (recbench_plugins.rqvae.RQVAE.fit): k-means initialisation of the
    codebooks on the first batch, then `vae_epochs` epochs, resumed from `checkpoint` where it holds a state."""
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):  # seeds the layers' initialisation; the global state is restored
        torch.manual_seed(config.seed)
        model = RQVAEModel(data.shape[1], config)
    batch = min(config.vae_batch_size, len(data))
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is None:
        order = torch.randperm(len(data), generator=generator)
        model.init_codebooks(data[order[:batch].sort().values], config)
    optimizer = make_optimizer(model, config)
    first, losses = 0, []
    if saved is not None:  # every epoch after the first draws its order from the generator: its state is all that is needed
        try:
            first, losses = int(saved["epoch"]), [float(v) for v in saved["losses"]]
            if not 1 <= first <= config.vae_epochs or len(losses) != first:
                raise ValueError(f"epoch {first} with {len(losses)} losses, of {config.vae_epochs}")
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # an intact file that another rqvae wrote
            checkpoint.log(f"fit checkpoint {checkpoint.path} does not fit this network ({type(exc).__name__}: "
                           f"{str(exc)[:200]}); the fit starts from the beginning")
            checkpoint.fresh = True
            return fit(x, config, checkpoint)
        checkpoint.log(f"rqvae: resuming at epoch {first:,} of {config.vae_epochs:,} from {checkpoint.path}")
    with progress_bar() as bar:
        task = bar.add_task("rqvae", total=config.vae_epochs, completed=first, loss=losses[-1] if losses else float("nan"))
        for epoch in range(first, config.vae_epochs):
            if epoch:
                order = torch.randperm(len(data), generator=generator)
            total = 0.0
            for start in range(0, len(data), batch):
                rows = data[order[start:start + batch]]
                loss = model.loss(rows)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
            losses.append(total / len(data))
            bar.update(task, advance=1, loss=losses[-1])
            if checkpoint is not None and (checkpoint.due() or epoch + 1 == config.vae_epochs):
                checkpoint.save({"epoch": epoch + 1, "losses": losses, "model": model.state_dict(),
                                 "optimizer": optimizer.state_dict(), "generator": generator.get_state()})
    return RQVAEQuantizer(model, losses)

