"""Board file on the device: /board.json, validated on the host at deploy time
(firmware/boardcheck.py), so the device only parses it.

  load(path="board.json") -> dict      raises OSError (missing) or ValueError
"""
import json


def load(path="board.json"):
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError:
            raise ValueError("board: %s is not valid JSON" % path)
