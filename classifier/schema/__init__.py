"""The row format, on the ground floor: what prediction writes and every other part reads.

`rows`: one `Row` per photo (or per animal), its columns and the words it uses, and the `Decision` that
records how its answer was reached; `observations`: what a label says a row observed; `predictions_file`:
a predictions CSV or JSON read back into the same `Row`s and written again (docs/predictions.md is the spec).
Nothing here imports torch or another part of the library.
"""
