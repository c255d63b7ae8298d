"""Bone-length constancy: measure, estimate and enforce constant bone lengths.

A bone is identified by its child joint: bone ``j`` runs from ``parents[j]`` to ``j``.
A root (``parents[j] == -1``) has no bone; its entries are NaN in every per-bone
output. ``parents`` lists parents before children (as in :class:`mocap.skeletons.Skeleton`).

Joint arrays are ``(..., J, D)`` (usually ``(T, J, 3)`` metres); per-bone statistics
pool every leading axis as frames. Missing joints are NaN.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bone_lengths", "estimate_bone_lengths", "enforce_bone_lengths", "bone_length_cv"]


def _check_parents(parents: Sequence[int] | np.ndarray) -> np.ndarray:
    par = np.asarray(parents)
    if par.ndim != 1 or par.size == 0 or not np.issubdtype(par.dtype, np.integer):
        raise ValueError(f"parents must be a non-empty 1-D sequence of ints (root = -1), got {parents!r}")
    for j, p in enumerate(par.tolist()):
        if p != -1 and not 0 <= p < j:
            raise ValueError(
                f"parents[{j}] = {p}: each parent must be -1 (a root) or an earlier joint index; "
                f"reorder the joints so that parents come before children"
            )
    return par.astype(np.intp)


def _check_joints(joints: np.ndarray, n_joints: int) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-2] != n_joints:
        raise ValueError(f"joints must have shape (..., J={n_joints}, D), e.g. (T, {n_joints}, 3); got {arr.shape}")
    return arr


def bone_lengths(joints: np.ndarray, parents: Sequence[int] | np.ndarray) -> np.ndarray:
    """Length of every bone in every frame.

    Args:
        joints: (T, J, 3) float positions in metres (any leading axes ``(..., J, D)``).
        parents: (J,) parent index per joint, root = -1, parents before children.

    Returns:
        (T, J) float64 metres: ``|joints[:, j] - joints[:, parents[j]]|``; NaN for a root
        and where either endpoint is NaN.
    """
    par = _check_parents(parents)
    arr = _check_joints(joints, par.size)
    is_root = par < 0
    offsets = arr - arr[..., np.where(is_root, 0, par), :]
    lengths = np.linalg.norm(offsets, axis=-1)
    lengths[..., is_root] = np.nan
    return lengths


def estimate_bone_lengths(
    joints: np.ndarray,
    parents: Sequence[int] | np.ndarray,
    *,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.3,
    left_right: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """Robust constant length per bone: the median over the frames where it is seen.

    A bone is seen in a frame when both its endpoints are finite and, if ``confidence``
    is given, both have confidence >= ``min_confidence``. For each pair ``(l, r)`` in
    ``left_right`` the bones ending at joints ``l`` and ``r`` get the mean of their two
    medians (or the one that exists if the other bone is never seen); a pair with a root
    is ignored.

    Args:
        joints: (T, J, 3) float positions in metres.
        parents: (J,) parent index per joint, root = -1, parents before children.
        confidence: optional (T, J) per-joint confidence in [0, 1].
        min_confidence: joints below this confidence do not count.
        left_right: pairs (left joint index, right joint index), as
            :attr:`Skeleton.left_right`.

    Returns:
        (J,) float64 metres; NaN for a root and for a bone never seen.
    """
    par = _check_parents(parents)
    n = par.size
    lengths = bone_lengths(joints, par).reshape(-1, n)
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64)
        expected = np.asarray(joints).shape[:-1]
        if conf.shape != expected:
            raise ValueError(f"confidence must have shape {expected} (one value per joint and frame), got {conf.shape}")
        ok = (conf >= float(min_confidence)).reshape(-1, n)  # NaN confidence -> not ok
        ok = ok & ok[:, np.where(par < 0, 0, par)]
        lengths = np.where(ok, lengths, np.nan)

    seen = np.isfinite(lengths).any(axis=0)
    median = np.full(n, np.nan)
    if seen.any():
        median[seen] = np.nanmedian(lengths[:, seen], axis=0)

    out = median.copy()
    for pair in left_right:
        if len(pair) != 2:
            raise ValueError(f"left_right must hold (left, right) index pairs, got {pair!r}")
        left, right = int(pair[0]), int(pair[1])
        if not (0 <= left < n and 0 <= right < n):
            raise ValueError(f"left_right pair {pair!r} is out of range for {n} joints")
        if par[left] < 0 or par[right] < 0:
            continue
        both = median[[left, right]]
        if np.isfinite(both).any():
            out[left] = out[right] = np.nanmean(both)
    return out


def enforce_bone_lengths(
    joints: np.ndarray,
    parents: Sequence[int] | np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """Rebuild the skeleton from the root out with every bone at its constant length.

    Each root keeps its position. Walking parents before children, joint ``j`` is placed
    at ``new[parent] + lengths[j] * unit(joints[j] - joints[parent])``: the bone keeps
    the direction it has in the input, only its length changes, and every joint moves
    with its (rebuilt) ancestors. A NaN joint is NaN in the output together with its
    whole subtree, and nothing else is affected. Where a bone has zero length in the
    input (no direction) or ``lengths[j]`` is NaN (never seen), the input offset is kept
    as it is and that bone's length is not enforced.

    Args:
        joints: (T, J, 3) float positions in metres (any leading axes ``(..., J, D)``).
        parents: (J,) parent index per joint, root = -1, parents before children.
        lengths: (J,) float metres, >= 0 or NaN, e.g. from :func:`estimate_bone_lengths`;
            entries of roots are ignored.

    Returns:
        (T, J, 3) float64 metres, same shape as ``joints``.
    """
    par = _check_parents(parents)
    arr = _check_joints(joints, par.size)
    target = np.asarray(lengths, dtype=np.float64)
    if target.shape != (par.size,):
        raise ValueError(f"lengths must have shape (J,) = ({par.size},), got {target.shape}")
    bones = par >= 0
    if np.any(target[bones] < 0) or np.any(np.isinf(target[bones])):
        raise ValueError(f"lengths must be >= 0 and finite (or NaN for unknown), got {target}")

    out = np.empty_like(arr)
    for j, p in enumerate(par.tolist()):
        if p < 0:
            out[..., j, :] = arr[..., j, :]
            continue
        offset = arr[..., j, :] - arr[..., p, :]
        norm = np.linalg.norm(offset, axis=-1, keepdims=True)
        if np.isnan(target[j]):
            scale = np.ones_like(norm)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(norm > 0, target[j] / norm, 1.0)
        out[..., j, :] = out[..., p, :] + scale * offset
    return out


def bone_length_cv(joints: np.ndarray, parents: Sequence[int] | np.ndarray) -> np.ndarray:
    """Coefficient of variation of each bone's length over time: std / mean.

    A quality figure: 0 for a rigid skeleton, about ``sigma / L`` for a bone of length
    ``L`` whose length jitters with standard deviation ``sigma``. Uses the population
    standard deviation over the frames where both endpoints are finite.

    Args:
        joints: (T, J, 3) float positions in metres.
        parents: (J,) parent index per joint, root = -1, parents before children.

    Returns:
        (J,) float64, dimensionless; NaN for a root, for a bone seen in fewer than two
        frames and for a bone of mean length 0.
    """
    par = _check_parents(parents)
    lengths = bone_lengths(joints, par).reshape(-1, par.size)
    finite = np.isfinite(lengths)
    count = finite.sum(axis=0)
    filled = np.where(finite, lengths, 0.0)
    cv = np.full(par.size, np.nan)
    ok = count >= 2
    mean = filled[:, ok].sum(axis=0) / count[ok]
    var = (np.where(finite[:, ok], lengths[:, ok] - mean, 0.0) ** 2).sum(axis=0) / count[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        cv[ok] = np.where(mean > 0, np.sqrt(var) / mean, np.nan)
    return cv


def rest_offsets_with_lengths(rest_offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rest offsets (J, 3) rescaled to bone ``lengths`` (J,) metres, directions kept.

    A NaN length (a bone never seen) keeps the rest offset's own length; roots stay zero.
    """
    rest = np.asarray(rest_offsets, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    if rest.ndim != 2 or rest.shape[1] != 3 or lengths.shape != rest.shape[:1]:
        raise ValueError(f"rest_offsets (J, 3) and lengths (J,) disagree: {rest.shape}, {lengths.shape}")
    own = np.linalg.norm(rest, axis=-1)
    lengths = np.where(np.isfinite(lengths), lengths, own)
    return np.where(own[:, None] > 1e-12, rest / np.maximum(own, 1e-12)[:, None] * lengths[:, None], 0.0)
