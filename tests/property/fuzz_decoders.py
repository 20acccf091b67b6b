"""Coverage-guided fuzzing (atheris/libFuzzer) of every decoder that reads peer bytes.

Run:  python tests/property/fuzz_decoders.py -max_total_time=60 CORPUS_DIR [SEED_DIR...]
(any libFuzzer flag works; -rss_limit_mb bounds memory). The target is fuzz_targets.py's
`decode_anything`: a decoder must return or raise ProtocolError, and anything else is a
crash that libFuzzer saves as `crash-*` (keep those in tests/property/fuzz_corpus/ as a
regression corpus; test_fuzz_smoke.py replays it). tests/property/test_fuzz_smoke.py runs
this script with seeds drawn from valid Produce frames and record batches.
"""

from __future__ import annotations

import contextlib
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["kafkito", "fuzz_targets"]):
    from fuzz_targets import decode_anything

    from kafkito.errors import ProtocolError


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_anything(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
