"""The fixed evaluation protocol's split: leave-one-out, identical for every generator.

For a user with chronological items s_1..s_n: s_n is the test target, s_{n-1} the validation
target, s_1..s_{n-2} the training part. A model sees at most `max_seq_len` most recent items of
history. Users with fewer than 3 items have no validation/test target and are not evaluated.

Training samples are (history, target) pairs taken from the training part only:
- sliding window: every prefix s_1..s_{t} with t >= min_hist_len predicts s_{t+1};
- otherwise one sample per user: s_1..s_{m-1} predicts s_m (m = n-2); a sequence model reads
  its per-position targets from the history itself (`Batch.next_items`). Only the most recent
  `max_seq_len` positions are read, so a longer training part loses its earlier targets;
- windows (`train_windows`): the user's first max_seq_len + 1 items predict at every position, and
  each later item is the target of one window of the max_seq_len items before it, which predicts
  only that item (`Batch.predict`): every training target once (RPG's reference scheme).

Histories are left-padded with 0, so `history[:, -1]` is always the most recent item.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterator

import numpy as np
import torch

from .prepare import Prepared


@dataclass
class Batch:
    users: torch.Tensor  # [B] user index
    history: torch.Tensor  # [B, L] item ids, left-padded with 0
    target: torch.Tensor  # [B] the next item
    history_time: torch.Tensor | None = None  # [B, L] unix seconds (0 on padding), where known
    target_time: torch.Tensor | None = None  # [B]
    predict: torch.Tensor | None = None  # [B] how many of the newest positions have a target (None: all; Split.window_positions)

    def __len__(self) -> int:
        return self.users.shape[0]

    def to(self, device) -> "Batch":
        """The batch on `device`. To a GPU through pinned (page-locked) memory without waiting for the
        copy: the host goes on gathering the next batch while the copy and this step's kernels run in
        order on the GPU's stream. Elsewhere the tensors as they are (CPU to CPU copies nothing)."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        if torch.device(device).type == "cuda":
            return Batch(**{k: v.pin_memory().to(device, non_blocking=True) if v is not None else None for k, v in moved.items()})
        return Batch(**{k: v.to(device) if v is not None else None for k, v in moved.items()})

    def next_items(self) -> torch.Tensor:
        """[B, L]: for each history position, the item that follows it (0 after padding)."""
        nxt = torch.cat([self.history[:, 1:], self.target[:, None]], dim=1)
        nxt = nxt.masked_fill(self.history == 0, 0)
        if self.predict is not None:  # positions before a window's last `predict` ones predict nothing
            L = nxt.shape[1]
            nxt = nxt.masked_fill(torch.arange(L, device=nxt.device)[None, :] < (L - self.predict)[:, None], 0)
        return nxt


class Split:
    def __init__(self, data: Prepared, max_seq_len: int):
        if max_seq_len < 1:
            raise ValueError(f"max_seq_len must be >= 1, got {max_seq_len}")
        self.data = data
        self.max_seq_len = max_seq_len
        self.lengths = np.diff(data.offsets)
        self.eval_users = np.flatnonzero(self.lengths >= 3)

    @property
    def n_items(self) -> int:
        return self.data.n_items

    @property
    def n_users(self) -> int:
        return self.data.n_users

    @property
    def has_timestamps(self) -> bool:
        """Whether batches carry event times (MovieLens does; the shared Amazon files keep only the order)."""
        return self.data.times is not None

    def train_lengths(self) -> np.ndarray:
        """Per user, the length of the training part (0 for users too short to evaluate)."""
        return np.where(self.lengths >= 3, self.lengths - 2, 0)

    def train_item_counts(self) -> np.ndarray:
        """[N+1] how often each item occurs in the training parts (index 0: padding, always 0)."""
        owner = np.repeat(np.arange(self.n_users), self.lengths)
        within = np.arange(len(self.data.items)) - self.data.offsets[owner]
        mask = within < self.train_lengths()[owner]
        return np.bincount(self.data.items[mask], minlength=self.n_items + 1)

    def train_positions(self, sliding: bool, min_hist_len: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(users, positions): position = index in the flat item array of each sample's target."""
        starts, train = self.data.offsets[:-1], self.train_lengths()
        if not sliding:
            keep = train >= 2
            users = np.flatnonzero(keep)
            return users, starts[keep] + train[keep] - 1
        first = max(min_hist_len, 1)
        per_user = np.maximum(train - first, 0)
        users = np.repeat(np.arange(self.n_users), per_user)
        # position of sample j of user u: start_u + first + j
        within = np.arange(per_user.sum()) - np.repeat(np.cumsum(per_user) - per_user, per_user)
        return users, starts[users] + first + within

    def window_positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, positions, predict) of the windows of one-per-user training (module docstring): each
        user's first window ends at its (max_seq_len + 1)-th training item, or its last if sooner, and
        predicts at every position (predict = max_seq_len); each later training item ends a window that
        predicts only it (predict = 1)."""
        starts, train, L = self.data.offsets[:-1], self.train_lengths(), self.max_seq_len
        keep = train >= 2
        first_users = np.flatnonzero(keep)
        first = starts[keep] + np.minimum(train[keep], L + 1) - 1
        later = np.maximum(train - (L + 1), 0)  # training items after the first window, per user
        later_users = np.repeat(np.arange(self.n_users), later)
        within = np.arange(later.sum()) - np.repeat(np.cumsum(later) - later, later)
        users = np.concatenate([first_users, later_users])
        positions = np.concatenate([first, starts[later_users] + L + 1 + within])
        predict = np.concatenate([np.full(len(first_users), L), np.ones(len(later_users), dtype=np.int64)])
        order = np.lexsort((positions, users))  # by user, oldest window first
        return users[order], positions[order], predict[order]

    def train_targets(self) -> int:
        """Targets in the training parts: every training item after a user's first."""
        return int(np.maximum(self.train_lengths() - 1, 0).sum())

    def eval_positions(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        if part not in ("valid", "test"):
            raise ValueError(f"part must be 'valid' or 'test', got {part!r}")
        users = self.eval_users
        back = 2 if part == "valid" else 1
        return users, self.data.offsets[users + 1] - back

    def history_lengths(self, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The number of non-padding items in each sample's history: min(position - user start, max_seq_len)."""
        return np.minimum(positions - self.data.offsets[users], self.max_seq_len)

    def gather(self, users: np.ndarray, positions: np.ndarray, trim: bool = False, predict: np.ndarray | None = None) -> Batch:
        """The batch whose sample i is (history before positions[i], target at positions[i]); `predict`
        (from window_positions) says how many of each sample's newest positions have a target.

        With `trim`, the leading history columns that are padding in every row are dropped (at
        least one column is kept), so the batch is as long as its longest history. The newest item
        stays in the last column; models that embed positions index them from the right.
        """
        L = self.max_seq_len
        if trim and len(users):
            L = int(max(1, self.history_lengths(users, positions).max()))
        idx = positions[:, None] - L + np.arange(L)[None, :]
        valid = idx >= self.data.offsets[users][:, None]
        idx = np.where(valid, idx, 0)
        history = np.where(valid, self.data.items[idx], 0)
        batch = Batch(
            users=torch.from_numpy(users.astype(np.int64)),
            history=torch.from_numpy(history.astype(np.int64)),
            target=torch.from_numpy(self.data.items[positions].astype(np.int64)),
            predict=None if predict is None else torch.from_numpy(np.asarray(predict, dtype=np.int64)),
        )
        if self.data.times is not None:
            batch.history_time = torch.from_numpy(np.where(valid, self.data.times[idx], 0))
            batch.target_time = torch.from_numpy(self.data.times[positions])
        return batch

    def eval_batches(self, part: str, batch_size: int, shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
        """Batches of `part`; with shard=(i, n), only every n-th user starting at the i-th."""
        users, positions = self.eval_positions(part)
        users, positions = users[shard[0] :: shard[1]], positions[shard[0] :: shard[1]]
        for i in range(0, len(users), batch_size):
            yield self.gather(users[i : i + batch_size], positions[i : i + batch_size])
