"""The CDDL schema (protocol/messages.cddl) accepts every golden vector and rejects
out-of-schema payloads, checked with pycddl, an independent CDDL validator."""
import json
from pathlib import Path

import pytest

from protocol import cbor

pycddl = pytest.importorskip("pycddl")
ROOT = Path(__file__).resolve().parents[2]
SRC = (ROOT / "protocol/messages.cddl").read_text()
VEC = json.loads((ROOT / "protocol/vectors/vectors.json").read_text())


def schema(rule):
    return pycddl.Schema("top = %s\n%s" % (rule, SRC))


@pytest.mark.parametrize("vec", VEC["vectors"], ids=lambda v: v["name"])
def test_vectors_match_cddl(vec):
    schema("uplink" if vec["direction"] == "up" else "downlink").validate_cbor(bytes.fromhex(vec["payload_hex"]))
    # pycddl mis-indexes `.cbor` inside arrays, so check the envelope's parts one by one
    env = cbor.loads(bytes.fromhex(vec["envelope_hex"]))
    assert env.tag == 17 and len(env.value) == 4
    prot, unprot, payload, tag = env.value
    schema("{ 1: 4, 6: bstr .size (1..5) }").validate_cbor(prot)
    schema("unprotected-header").validate_cbor(cbor.dumps(unprot))
    schema("mac-tag").validate_cbor(cbor.dumps(tag))
    assert payload == bytes.fromhex(vec["payload_hex"])


@pytest.mark.parametrize("bad", [{1: 5, 2: 101, 6: 3}, {0: 3, 1: 9, 2: 1}, {1: 5, 2: 5}, {0: 4, 1: -1, 2: 0}])
def test_cddl_rejects_out_of_schema(bad):
    with pytest.raises(Exception):
        schema("uplink").validate_cbor(cbor.dumps(bad))
