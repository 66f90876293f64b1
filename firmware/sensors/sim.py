"""Simulated sensor of the virtual board: a noisy reading of the simulated
world's true level (hal_sim.World), in consumable units; None on a dropout."""


class SimSensor:
    def __init__(self, world):
        self.world = world

    def setup(self):
        pass

    def read(self):
        try:
            return self.world.read_sensor()
        except (OSError, ValueError):
            return None


def create(s):
    from firmware import hal
    return SimSensor(hal.world())
