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
(height = mount_mm - distance).
"""
import math

SHAPES = ("linear", "vcyl", "hcyl", "sphere", "table")
UNITS = ("g", "kg", "ml", "l", "pages", "units", "%")


def vcyl_ml(d, h):
    return math.pi * d * d / 4 * h / 1000


def hcyl_ml(d, length, h):
    """Liquid volume (ml) at height h in a horizontal cylinder of diameter d."""
    r = d / 2
    h = min(max(h, 0.0), d)
    a = r * r * math.acos((r - h) / r) - (r - h) * math.sqrt(max(0.0, 2 * r * h - h * h))
    return a * length / 1000


def sphere_ml(d, h):
    """Spherical cap of height h in a sphere of diameter d (ml)."""
    h = min(max(h, 0.0), d)
    return math.pi * h * h * (1.5 * d - h) / 3000   # pi h^2 (3r - h) / 3, mm^3 -> ml


def table(points, x):
    """Piecewise linear interpolation; clamps outside the table."""
    if x <= points[0][0]:
        return points[0][1]
    for i in range(1, len(points)):
        x1, v1 = points[i]
        if x <= x1:
            x0, v0 = points[i - 1]
            return v0 + (v1 - v0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def _pos(g, k):
    v = g.get(k)
    if not isinstance(v, (int, float)) or v <= 0:
        raise ValueError("geometry.%s must be a positive number" % k)
    return v


def validate(g):
    """Raise ValueError if the geometry section is unusable."""
    s = g.get("shape")
    if s not in SHAPES:
        raise ValueError("geometry.shape must be one of %s, not %r" % (", ".join(SHAPES), s))
    if s == "linear":
        if "per_unit" in g:
            _pos(g, "per_unit")
        elif g.get("empty") == g.get("full") or not all(
                isinstance(g.get(k), (int, float)) for k in ("empty", "full")):
            raise ValueError("geometry linear needs numbers empty != full (or tare/per_unit)")
    elif s == "table":
        p = g.get("points")
        if not p or len(p) < 2:
            raise ValueError("geometry.points needs at least 2 [x, value] pairs")
        for i in range(1, len(p)):
            if p[i][0] <= p[i - 1][0]:
                raise ValueError("geometry.points x must increase")
    else:
        _pos(g, "diameter_mm")
        _pos(g, {"vcyl": "height_mm", "hcyl": "length_mm", "sphere": "diameter_mm"}[s])
    if g.get("input", "height") == "distance":
        _pos(g, "mount_mm")


class Geometry:
    def __init__(self, g, capacity=100.0, unit="%"):
        validate(g)
        self.g = g
        self.shape = g["shape"]
        self.capacity = 100.0 if unit == "%" else float(capacity)
        self.unit = unit
        self._mount = g.get("mount_mm") if g.get("input") == "distance" else None
        if self.shape == "linear" and "per_unit" in g:
            e = g.get("tare", 0)
            self._e, self._f = e, e + g["per_unit"] * capacity
        elif self.shape == "linear":
            self._e, self._f = g["empty"], g["full"]
        self._full = self._value(self._top()) if self.shape != "linear" else 1.0

    def _top(self):
        g = self.g
        if self.shape == "table":
            return g["points"][-1][0]
        return g["height_mm"] if self.shape == "vcyl" else g["diameter_mm"]

    def _value(self, h):
        g, s = self.g, self.shape
        if s == "vcyl":
            return vcyl_ml(g["diameter_mm"], min(max(h, 0.0), g["height_mm"]))
        if s == "hcyl":
            return hcyl_ml(g["diameter_mm"], g["length_mm"], h)
        if s == "sphere":
            return sphere_ml(g["diameter_mm"], h)
        return table(g["points"], h)

    def fraction(self, x):
        """Fraction full, 0..1, or None for no reading."""
        if x is None:
            return None
        if self.shape == "linear":
            f = (x - self._e) / (self._f - self._e)
        else:
            if self._mount is not None:
                x = self._mount - x
            f = self._value(x) / self._full
        return 0.0 if f < 0 else 1.0 if f > 1 else f

    def quantity(self, x):
        """Remaining quantity in consumable units, or None for no reading."""
        f = self.fraction(x)
        return None if f is None else f * self.capacity

    def permille(self, x):
        f = self.fraction(x)
        return None if f is None else int(f * 1000 + 0.5)

    def full_volume_ml(self):
        """Container volume for the solid shapes (ml); None for linear/table."""
        return self._full if self.shape in ("vcyl", "hcyl", "sphere") else None


def from_board(board):
    c = board.get("consumable", {})
    return Geometry(board["geometry"], c.get("capacity", 100), c.get("unit", "%"))
