"""Syncing the eight sector files of a Gatan K2 IS acquisition: the common first and
last whole frame (see :mod:`~libertem.io.dataset.k2is_sectors` for the layout)."""

from __future__ import annotations

import os

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.k2is_decode import BLOCK_SIZE, BLOCKS_PER_SECTOR_PER_FRAME
from libertem.io.dataset.k2is_sectors import DataBlock, Sector, block_position

#: frames searched, at most, for the common first frame of all sectors
FIRST_FRAME_SCAN_SIZE = 400


def _is_frame_start(block: DataBlock) -> bool:
    return block.is_valid and block.index_in_frame == 0


class K2Syncer:
    """Find the common first and last whole frame of the eight sectors.

    Parameters
    ----------
    paths
        The sector files, in sector order.
    start_offsets, last_offsets
        Known byte offsets of each sector's first and last block (e.g. from an earlier
        sync); by default the whole files.
    """

    def __init__(self, paths, start_offsets=None, last_offsets=None):
        self.paths = [os.fspath(p) for p in paths]
        starts = [0] * len(self.paths) if start_offsets is None else list(start_offsets)
        ends = [None] * len(self.paths) if last_offsets is None else list(last_offsets)
        self.sectors = [
            Sector(p, idx, initial_offset=s, end_offset=e)
            for idx, (p, s, e) in enumerate(zip(self.paths, starts, ends))
        ]

    def first_blocks(self) -> list[DataBlock]:
        """The first block of each sector."""
        return [s.first_block() for s in self.sectors]

    def last_blocks(self) -> list[DataBlock]:
        """The last block of each sector."""
        return [s.last_block() for s in self.sectors]

    def _advance_to_frame(self, sector: Sector, frame_id: int) -> None:
        """Move ``sector``'s first block to the first block of frame ``frame_id`` or later."""
        first = sector.first_block()
        if _is_frame_start(first) and first.frame_id < frame_id:
            # jump directly when no blocks are missing in between
            guess = sector.first_block_offset + (frame_id - first.frame_id) * (
                BLOCKS_PER_SECTOR_PER_FRAME * BLOCK_SIZE
            )
            if guess <= sector.last_block_offset:
                b = sector.get_block_by_offset(guess)
                if _is_frame_start(b) and b.frame_id == frame_id:
                    sector.set_first_block_offset(guess)
                    return
        limit = sector.first_block_offset + FIRST_FRAME_SCAN_SIZE * (
            BLOCKS_PER_SECTOR_PER_FRAME * BLOCK_SIZE
        )
        for b in sector.get_blocks():
            if b.offset > limit:
                break
            if _is_frame_start(b) and b.frame_id >= frame_id:
                sector.set_first_block_offset(b.offset)
                return
        raise DataSetException(
            f"{sector.fname}: no frame {frame_id} or later found within "
            f"{FIRST_FRAME_SCAN_SIZE} frames; cannot sync the sectors"
        )

    def sync_to_first_frame(self) -> None:
        """Start every sector at the first whole frame with the shutter active."""
        for sector in self.sectors:
            first = sector.first_block_with_search(lambda b: b.is_valid and b.shutter_active)
            if first is None:
                raise DataSetException(
                    f"{sector.fname}: no valid data block with the shutter-active flag"
                )
            sector.set_first_block_offset(first.offset)
            if not _is_frame_start(first):
                self._advance_to_frame(sector, first.frame_id + 1)

    def sync_sectors(self) -> None:
        """Start all sectors at the same frame id (the latest of their first frames)."""
        for _ in range(4):
            ids = [b.frame_id for b in self.first_blocks()]
            target = max(ids)
            if min(ids) == target:
                return
            for sector, frame_id in zip(self.sectors, ids):
                if frame_id < target:
                    self._advance_to_frame(sector, target)
        raise DataSetException(f"{self.paths[0]}: cannot sync the sectors to a common frame")

    def _set_last_blocks(self) -> int:
        """End all sectors after the same number of whole frames; return that number."""
        per_frame = BLOCKS_PER_SECTOR_PER_FRAME * BLOCK_SIZE
        n_frames = min((s.filesize - s.first_block_offset) // per_frame for s in self.sectors)
        if n_frames < 1:
            raise DataSetException(
                f"{self.paths[0]}: the sectors hold no whole frame after the first "
                "shutter-active one"
            )
        for s in self.sectors:
            s.set_last_block_offset(s.first_block_offset + n_frames * per_frame - BLOCK_SIZE)
        return n_frames

    def validate_sync(self) -> None:
        """Check that all sectors start at the same frame start and end at the same frame end,
        with no block missing in between.

        Raises
        ------
        DataSetException
            Naming the sector that does not fit.
        """
        first_ids = set()
        last_ids = set()
        for s in self.sectors:
            first, last = s.first_block(), s.last_block()
            if not _is_frame_start(first):
                raise DataSetException(f"{s.fname}: first block is not the start of a frame")
            if not (last.is_valid and last.index_in_frame == BLOCKS_PER_SECTOR_PER_FRAME - 1):
                raise DataSetException(
                    f"{s.fname}: last block is not the end of a frame: blocks missing or "
                    "out of order"
                )
            n_frames = s.num_blocks // BLOCKS_PER_SECTOR_PER_FRAME
            if last.frame_id - first.frame_id != n_frames - 1:
                raise DataSetException(
                    f"{s.fname}: frames {first.frame_id}..{last.frame_id} in {n_frames} "
                    "frames of blocks: blocks missing or out of order"
                )
            first_ids.add(first.frame_id)
            last_ids.add(last.frame_id)
        if len(first_ids) != 1 or len(last_ids) != 1:
            raise DataSetException(
                f"{self.paths[0]}: sectors out of sync: first frames {sorted(first_ids)}, "
                f"last frames {sorted(last_ids)}"
            )

    def check_block_order(self) -> None:
        """Check that the blocks of the first frame lie where the layout expects them."""
        for s in self.sectors:
            for i in range(BLOCKS_PER_SECTOR_PER_FRAME):
                b = s.get_block_by_index(i)
                h = b.header
                if not b.is_valid or (h["pixel_y_start"], h["pixel_x_start"]) != block_position(i):
                    raise DataSetException(
                        f"{s.fname}: block {i} of the first frame is corrupt or out of place "
                        f"(at byte {b.offset})"
                    )

    def sync(self) -> int:
        """Sync the sectors (first shutter-active frame, common frame ids, whole frames)
        and validate the result.

        Returns
        -------
        int
            The number of whole frames.
        """
        self.sync_to_first_frame()
        self.sync_sectors()
        n_frames = self._set_last_blocks()
        self.validate_sync()
        self.check_block_order()
        return n_frames

    def close(self) -> None:
        """Close the sector files."""
        for s in self.sectors:
            s.close()


__all__ = ["FIRST_FRAME_SCAN_SIZE", "K2Syncer"]
