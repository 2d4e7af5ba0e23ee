"""The time budget of `ExplainCallback` (`max_seconds`): what each part of a
logging call cost when last measured, and what a call may still start.

A logging call has four parts: the forward pass that gives the explained
classes and their probabilities, one run per method, drawing and writing the
grid, and the scalars. The first call measures every part (it runs the
forward pass and each method twice, the first run tracing, and draws the
grid at two tile sizes), so that from the second call on a call starts only
what its estimates say fits:

- when the forward pass, the smallest grid and the scalars do not fit, the
  epoch is skipped (nothing but the `skipped` and `skipped_epoch` scalars);
- a method runs only if it fits with the smallest grid and the scalars after
  it (the others are skipped, in turn);
- the grid is drawn with the largest tile, `tile_size` halved down to
  `MIN_TILE`, that fits in what is left.

Grid cost is modelled as `factor * (base + per_pixel * pixels)`: the line
through the two sizes drawn in the first call, scaled by how much slower or
faster the last grid was than the line says.
"""

from __future__ import annotations

from collections.abc import Callable

#: The smallest grid tile the budget may draw, in pixels.
MIN_TILE = 16


def tile_sizes(tile_size: int) -> list[int]:
    """The tile sides the budget may draw, largest first.

    `tile_size`, then halved while at least `MIN_TILE` (`MIN_TILE` itself
    last when `tile_size` is not a power-of-two multiple of it); a
    `tile_size` below `MIN_TILE` is the only size.

    Example:
        >>> tile_sizes(96)
        [96, 48, 24, 16]
        >>> tile_sizes(12)
        [12]
    """
    sizes = [tile_size]
    while sizes[-1] // 2 >= MIN_TILE:
        sizes.append(sizes[-1] // 2)
    if sizes[-1] > MIN_TILE:
        sizes.append(MIN_TILE)
    return sizes


class Budget:
    """The measured cost of each part of a logging call, and the decisions
    `max_seconds` makes with them. Pure bookkeeping: the callback measures
    seconds with its clock and reports them here.

    Args:
        max_seconds: the most seconds one logging call may take.

    Attributes:
        seconds: part -> seconds at its last measurement: `"forward"`,
            `"scalars"` and one entry per method title.
        ready: whether the first (measuring) call completed.
    """

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = float(max_seconds)
        self.seconds: dict[str, float] = {}
        self.ready = False
        self._base = 0.0
        self._per_pixel: float | None = None
        self._factor = 1.0

    # -- measurements -------------------------------------------------------------
    def record(self, part: str, seconds: float) -> None:
        """The seconds `part` took at its latest run."""
        self.seconds[part] = max(0.0, float(seconds))

    def fit_grid(self, large: tuple[int, float], small: tuple[int, float]) -> None:
        """The grid cost line through two `(pixels, seconds)` measurements.

        A slope that noise made negative is read as "size does not matter":
        the larger of the two costs, whatever the size.
        """
        (p1, s1), (p2, s2) = large, small
        if p1 == p2 or s1 <= s2:
            self._base, self._per_pixel = max(s1, s2), 0.0
        else:
            self._per_pixel = (s1 - s2) / (p1 - p2)
            self._base = max(0.0, s2 - self._per_pixel * p2)
        self._factor = 1.0

    def record_grid(self, pixels: int, seconds: float) -> None:
        """A grid of `pixels` took `seconds`: rescale the cost line by it (the
        line through this point alone before any fit)."""
        if self._per_pixel is None:
            self._base, self._per_pixel = 0.0, max(0.0, seconds) / max(pixels, 1)
            self._factor = 1.0
            return
        line = self._base + self._per_pixel * pixels
        self._factor = max(0.0, seconds) / line if line > 0 else 1.0

    # -- estimates ----------------------------------------------------------------
    def grid(self, pixels: int) -> float:
        """Estimated seconds to draw and write a grid of `pixels` pixels."""
        if self._per_pixel is None:
            return 0.0
        return self._factor * (self._base + self._per_pixel * pixels)

    def fixed(self, pixels: int) -> float:
        """The part of a call that no skipping of methods avoids: the forward
        pass, a grid of `pixels` pixels and the scalars."""
        return self.seconds.get("forward", 0.0) + self._after(pixels)

    def _after(self, pixels: int) -> float:
        return self.grid(pixels) + self.seconds.get("scalars", 0.0)

    # -- decisions ----------------------------------------------------------------
    def epoch_fits(self, smallest: int) -> bool:
        """Whether a call fits at all: its fixed part with the smallest grid
        (`smallest` pixels)."""
        return self.fixed(smallest) <= self.max_seconds

    def method_fits(self, part: str, elapsed: float, smallest: int) -> bool:
        """Whether `part` can run `elapsed` seconds into the call and still
        leave time for the smallest grid and the scalars. A method never
        measured (it failed so far) is let through."""
        if part not in self.seconds:
            return True
        needed = self.seconds[part] + self._after(smallest)
        return elapsed + needed <= self.max_seconds

    def tile(self, elapsed: float, sizes: list[int], pixels: Callable) -> int:
        """The largest tile of `sizes` (largest first) whose grid fits in the
        time left after `elapsed` seconds; the smallest when none does."""
        for size in sizes:
            if elapsed + self._after(pixels(size)) <= self.max_seconds:
                return size
        return sizes[-1]

    def describe(self, smallest: int) -> str:
        """The fixed part of a call, in words, for the warning."""
        return (
            f"forward pass {self.seconds.get('forward', 0.0):.3f} s + smallest grid "
            f"{self.grid(smallest):.3f} s + scalars "
            f"{self.seconds.get('scalars', 0.0):.3f} s"
        )
