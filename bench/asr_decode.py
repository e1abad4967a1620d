"""Speech recognition before and after issue 33's decoding fix, in one run on the same turns.

    python -m bench.asr_decode MANIFEST.csv [MANIFEST.csv ...] [--telephone] [--both] [--whole]

Each manifest (`path,text`, as for `python -m models.evaluate asr`; `python -m
training.recipes.asr_manifest` writes the held-out ones) is cut as the call core
cuts turns, each turn encoded once by the shipped listener, then decoded twice
on the same states, one after the other: as before the fix (the turn's states
alone, `no_repeat_ngram_size=3`, no safety net) and as shipped (states completed
to the 30 s window with the encoder's silence, safety net). Prints, per manifest
and condition (studio; the simulated phone line with `--telephone`; both with
`--both`), WER, exact and repeated shares and decode time per turn for each,
the ratio of the decode times, and as the last line one JSON object with every
row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from models.asr import DecodeSettings, WhisperDecoder
from models.listen import TurnListener
from training.evaluate import asr_conditions, asr_summary, hear_clips, read_transcripts, render_asr


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifests", type=Path, nargs="+")
    parser.add_argument("--telephone", action="store_true", help="the simulated phone line only")
    parser.add_argument("--both", action="store_true", help="studio and the simulated phone line")
    parser.add_argument("--whole", action="store_true", help="whole clips instead of turns")
    args = parser.parse_args(argv)
    listener = TurnListener.load(emotion=False)
    decoders = {
        "before": WhisperDecoder.around(listener, settings=DecodeSettings.before_fix()),
        "after": WhisperDecoder.around(listener),
    }
    conditions = [False, True] if args.both else [args.telephone]
    rows: list[dict[str, Any]] = []
    for manifest in args.manifests:
        items = read_transcripts(manifest)
        for telephone in conditions:
            heard = hear_clips(manifest, items, listener, decoders, telephone, args.whole)
            print(f"== {manifest.name}: {asr_conditions(telephone, args.whole)} ==")
            row: dict[str, Any] = {"manifest": manifest.name, "telephone": telephone, "whole": args.whole}
            for name, decoder in decoders.items():
                summary = asr_summary(heard[name])
                print(f"-- {name}: {decoder.describe()}\n{render_asr(heard[name], summary)}")
                row[name] = summary
            total = {name: sum(ms for c in heard[name] for ms in c.decode_ms) for name in decoders}
            row["decode_ratio"] = round(total["after"] / max(total["before"], 1e-9), 2)
            print(f"decode time after / before (sum over turns): {row['decode_ratio']}x\n", flush=True)
            rows.append(row)
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
