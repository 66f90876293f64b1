"""`consumables decode HEX...`: frames (hex, as captured on a serial line) -> JSON lines.

With --key (hex) or a registry the MAC is verified; a frame that fails prints a JSON
object with an "error" field instead, and the exit code is 1 if any frame failed.
"""
import argparse
import json
import sys

from host_tools import codec
from protocol import cose, framing, messages, schema
from protocol.errors import ProtocolError


def key_lookup(args):
    if args.key:
        try:
            key = bytes.fromhex(args.key)
        except ValueError:
            raise SystemExit("consumables decode: --key must be hex")
        return lambda kid: key
    import os
    path = args.registry or os.environ.get("CONSUMABLES_REGISTRY") or os.path.expanduser(
        "~/.config/smart-consumables/registry.json")
    try:
        with open(path) as f:
            devices = json.load(f).get("devices", {})
    except (OSError, ValueError) as e:
        raise SystemExit("consumables decode: cannot read registry %s: %s" % (path, e))
    keys = {d.encode(): bytes.fromhex(v["key"]) for d, v in devices.items()}
    return keys.get


def main_decode(argv):
    ap = argparse.ArgumentParser(prog="consumables decode", description=__doc__)
    ap.add_argument("frames", nargs="+", help="frame bytes in hex (delimiters optional)")
    ap.add_argument("--key", help="device key in hex (else the registry is used)")
    ap.add_argument("--registry", help="device registry file")
    ap.add_argument("--downlink", action="store_true", help="frames are downlink commands")
    args = ap.parse_args(argv)
    key_for = key_lookup(args)
    aad = cose.AAD_DOWN if args.downlink else cose.AAD_UP
    allowed = messages.DOWNLINK if args.downlink else schema.UPLINK
    failed = 0
    for hx in args.frames:
        try:
            data = bytes.fromhex(hx)
            for chunk in framing.Deframer().feed(data + b"\x00"):
                print(json.dumps(codec.decode_chunk(chunk, key_for, aad, allowed).to_json()))
        except (ValueError, ProtocolError) as e:
            failed += 1
            print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
    return 1 if failed else 0
