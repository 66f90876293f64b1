"""From a (calibrated) sensor reading to a quantity of consumable.

A board's "geometry" section says how the reading maps to the fraction of a full
container; the quantity is that fraction times consumable.capacity (in its unit:
g, ml, pages, ... or 0..100 for "%"). Shapes give the fraction curve:

  linear  {"empty": x0, "full": x1}            any reading, e.g. load cell grams,
          or {"tare": g, "per_unit": g}         distance (x1 < x0 works), sim units
  vcyl    {"diameter_mm", "height_mm"}          vertical cylinder: linear in height
  hcyl    {"diameter_mm", "length_mm"}          horizontal cylinder (propane tank):
                                                 circular segment area x length
  sphere  {"diameter_mm"}                       spherical cap
  table   {"points": [[x, v], ...]}             piecewise linear, x increasing,
                                                 v e.g. litres from a strapping table
For the non-linear shapes the reading is a liquid height in mm, or, with
"input": "distance" and "mount_mm", a distance from a sensor mounted on top
(height = mount_mm - distance). Their curves and the section's validation are in
firmware/shapes.py, loaded only for those shapes (deploy validates every board file).
"""


def validate(g):
    """Raise ValueError if the geometry section is unusable."""
    from firmware import shapes
    shapes.validate(g)


class Geometry:
    def __init__(self, g, capacity=100.0, unit="%"):
        self.g = g
        self.capacity = 100.0 if unit == "%" else float(capacity)
        self.unit = unit
        self._mount = g.get("mount_mm") if g.get("input") == "distance" else None
        self._curve = None
        if g.get("shape") == "linear" and "per_unit" in g:
            e = g.get("tare", 0)
            self._e, self._f = e, e + g["per_unit"] * capacity
        elif g.get("shape") == "linear":
            self._e, self._f = g.get("empty"), g.get("full")
        else:
            from firmware import shapes
            self._curve = shapes
        if self._curve is None and (self._e == self._f or self._f is None or self._e is None):
            raise ValueError("geometry linear needs numbers empty != full (or tare/per_unit)")
        if self._curve is not None:
            self._curve.validate(g)
            self._full = self._curve.value(g, self._curve.top(g))

    def fraction(self, x):
        """Fraction full, 0..1, or None for no reading."""
        if x is None:
            return None
        c = self._curve
        if c is None:
            f = (x - self._e) / (self._f - self._e)
        else:
            if self._mount is not None:
                x = self._mount - x
            f = c.value(self.g, x) / self._full
        return 0.0 if f < 0 else 1.0 if f > 1 else f

    def quantity(self, x):
        """Remaining quantity in consumable units, or None for no reading."""
        f = self.fraction(x)
        return None if f is None else f * self.capacity

    def full_volume_ml(self):
        """Container volume for the solid shapes (ml); None for linear/table."""
        return None if self._curve is None or self.g["shape"] == "table" else self._full


def from_board(board):
    c = board.get("consumable", {})
    return Geometry(board["geometry"], c.get("capacity", 100), c.get("unit", "%"))
