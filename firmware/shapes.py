"""Container shapes for firmware/geometry.py: the volume curves of the non-linear shapes
and the validation of a board's "geometry" section (firmware/geometry.py lists the
shapes). Deploy validates every board file with it (firmware/boardcheck.py); on a board
it is loaded only when the shape is not linear, so a load cell or a linear sensor does
not carry the curves in RAM.
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


def top(g):
    """The reading (height, mm, or table x) of a full container."""
    s = g["shape"]
    if s == "table":
        return g["points"][-1][0]
    return g["height_mm"] if s == "vcyl" else g["diameter_mm"]


def value(g, h):
    """Volume (or table value) at height h."""
    s = g["shape"]
    if s == "vcyl":
        return vcyl_ml(g["diameter_mm"], min(max(h, 0.0), g["height_mm"]))
    if s == "hcyl":
        return hcyl_ml(g["diameter_mm"], g["length_mm"], h)
    if s == "sphere":
        return sphere_ml(g["diameter_mm"], h)
    return table(g["points"], h)


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
