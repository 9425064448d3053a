"""Each user-facing task as one library function over the mode space: `score`, `compare`,
`explore`, `anchoring` (audit-tail, mix, lineage, drift) and `actions` (assignments, select, seeds).
The CLI and the HTTP service are thin skins over these.
"""
