"""consumables keys rotate DEVICE [--grace SECONDS]: give a device a new key over the air.

The registry entry gets the new key at once (one atomic write, host_tools/registry.rotate):
new key = HMAC-SHA-256(old key, "rekey" || nonce), with a fresh random nonce. The running
bridge reloads the registry; after each frame it stores under the old key it sends the
device a `rekey` downlink carrying the nonce, authenticated with the old key; the device
derives the same new key, writes it to its /provision.json and uses it from its next
frame on. Only the nonce is on the wire, never a key. The old key is accepted for the
grace period (default 7 days: time for a sleeping device to wake and be told), then
refused: frames under it fail their MAC. A device that stayed silent all that time needs
`consumables deploy` again. docs/THREAT_MODEL.md T24.
"""
from __future__ import annotations

import argparse
import sys
import time

from host_tools.registry import DEFAULT_GRACE_S, RegistryError, registry_path, rotate, valid_device_id


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise RegistryError(message)


def main_keys(argv=None) -> int:
    prog = "consumables keys"
    p = _Parser(prog=prog, description="Manage device keys.")
    sub = p.add_subparsers(dest="cmd", metavar="rotate")
    r = sub.add_parser("rotate", help="give DEVICE a new key by an authenticated downlink")
    r.add_argument("device")
    r.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                   help="how long the old key stays valid (default %d s = 7 days)" % DEFAULT_GRACE_S)
    r.add_argument("--registry", help="device registry (default $CONSUMABLES_REGISTRY or "
                                      "~/.config/smart-consumables/registry.json)")
    try:
        a = p.parse_args(argv)
        if a.cmd != "rotate":
            raise RegistryError("give a command: rotate DEVICE")
        if not valid_device_id(a.device):
            raise RegistryError("bad device id %s" % ascii(a.device)[:40])
        if not a.grace > 0:
            raise RegistryError("--grace must be positive")
        out = rotate(registry_path(a.registry), a.device, a.grace)
    except (RegistryError, OSError) as e:
        print("%s: error: %s" % (prog, e), file=sys.stderr)
        return 2
    print("%s: new key %s (was %s); the bridge delivers it after the device's next frame; the old key is "
          "refused after %s" % (a.device, out["new_fp"], out["old_fp"],
                                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(out["until"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main_keys())
