# runtimes: micropython cpython
# Geometry: reading -> fraction -> quantity.
import math
from firmware import shapes as geometry   # the curves (firmware/geometry.py loads them)
from firmware.geometry import Geometry


def close(a, b, tol=1e-3):
    assert abs(a - b) <= tol * max(1.0, abs(b)), (a, b)


def test_hcyl_segment_volume():
    d, L = 300.0, 1000.0
    full = math.pi * 150 * 150 * L / 1000
    close(geometry.hcyl_ml(d, L, 0), 0)
    close(geometry.hcyl_ml(d, L, 150), full / 2)
    close(geometry.hcyl_ml(d, L, 300), full)
    close(geometry.hcyl_ml(d, L, 999), full)          # clamped
    # quarter height: segment area r^2 (theta - sin theta)/2 with theta = 2 acos(1/2)
    th = 2 * math.acos(0.5)
    close(geometry.hcyl_ml(d, L, 75), 150 * 150 * (th - math.sin(th)) / 2 * L / 1000)


def test_sphere_cap_and_vcyl():
    close(geometry.sphere_ml(200, 100), 4 / 3 * math.pi * 100 ** 3 / 2 / 1000)
    close(geometry.sphere_ml(200, 200), 4 / 3 * math.pi * 100 ** 3 / 1000)
    close(geometry.vcyl_ml(100, 100), math.pi * 50 * 50 * 100 / 1000)


def test_propane_tank_from_top_distance():
    g = Geometry({"shape": "hcyl", "diameter_mm": 300, "length_mm": 1000,
                  "input": "distance", "mount_mm": 320}, capacity=9000, unit="g")
    close(g.fraction(170), 0.5)                        # height 150 = half
    close(g.quantity(20), 9000)                        # height 300 = full
    assert g.quantity(400) == 0                        # below the bottom: empty
    assert g.quantity(None) is None
    assert g.full_volume_ml() > 70000


def test_linear_load_cell_and_distance():
    g = Geometry({"shape": "linear", "tare": 250, "per_unit": 1.0}, capacity=1000, unit="g")
    close(g.quantity(750), 500)
    assert g.quantity(100) == 0 and g.quantity(5000) == 1000
    d = Geometry({"shape": "linear", "empty": 400, "full": 50}, capacity=2, unit="%")
    close(d.quantity(225), 50)                         # percent ignores capacity
    assert d.unit == "%" and d.capacity == 100


def test_table():
    pts = [[0, 0], [100, 10], [200, 40], [300, 50]]
    g = Geometry({"shape": "table", "points": pts}, capacity=50, unit="l")
    close(g.quantity(150), 25)
    close(g.quantity(-5), 0)
    close(g.quantity(350), 50)
    assert geometry.table(pts, 250) == 45


def test_invalid_geometries():
    bad = [{"shape": "cone"}, {"shape": "hcyl", "diameter_mm": 300},
           {"shape": "sphere", "diameter_mm": -1},
           {"shape": "linear", "empty": 1, "full": 1},
           {"shape": "table", "points": [[0, 0], [0, 1]]},
           {"shape": "vcyl", "diameter_mm": 10, "height_mm": 10, "input": "distance"}]
    for g in bad:
        try:
            Geometry(g)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % g)
