"""Input: every way a dataset reaches clusterdiv, turned into `Example` records.

`corpus/` reads files (one private module per family of formats behind one dispatch) and
in-memory data (texts, dicts, DataFrames, `datasets.Dataset`); `demo/` holds the bundled demo
sets. The stages above never see a file format.
"""
