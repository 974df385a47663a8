# Basis dimensions of escnn 1.0's R2Conv between single fields: the table in
# crates/equivar/tests/steerable_basis.rs. Run with the peers' venv:
#   /tmp/peers-venv/bin/python bench/escnn_basis_dims.py
import json, warnings
warnings.filterwarnings("ignore")
from escnn import gspaces, nn

def space(g):
    kind, n = g
    if kind == "C": return gspaces.rot2dOnR2(N=n)
    if kind == "D": return gspaces.flipRot2dOnR2(N=n)
    if kind == "SO2": return gspaces.rot2dOnR2(N=-1, maximum_frequency=10)
    if kind == "O2": return gspaces.flipRot2dOnR2(N=-1, maximum_frequency=10)

def rep(gs, r):
    kind = r[0]
    if kind == "trivial": return gs.trivial_repr
    if kind == "regular": return gs.regular_repr
    if kind == "irrep": return gs.irrep(*r[1:])
    if kind == "quotient": return gs.quotient_repr(r[1])

cases = [
  (("C",4), ("trivial",), ("trivial",), 3, 1),
  (("C",4), ("trivial",), ("regular",), 3, 1),
  (("C",4), ("regular",), ("regular",), 3, 1),
  (("C",4), ("regular",), ("regular",), 5, 1),
  (("C",4), ("regular",), ("regular",), 4, 1),
  (("C",4), ("irrep",1), ("irrep",1), 5, 1),
  (("C",8), ("trivial",), ("regular",), 7, 1),
  (("C",8), ("regular",), ("regular",), 5, 1),
  (("C",8), ("regular",), ("regular",), 7, 1),
  (("C",8), ("regular",), ("regular",), 3, 2),
  (("C",8), ("irrep",1), ("irrep",2), 5, 1),
  (("C",8), ("regular",), ("trivial",), 9, 1),
  (("C",8), ("quotient",2), ("regular",), 5, 1),
  (("C",16), ("regular",), ("regular",), 5, 1),
  (("C",16), ("regular",), ("regular",), 7, 1),
  (("D",4), ("regular",), ("regular",), 3, 1),
  (("D",4), ("trivial",), ("regular",), 5, 1),
  (("D",4), ("irrep",1,1), ("irrep",1,1), 5, 1),
  (("D",4), ("irrep",0,2), ("regular",), 5, 1),
  (("D",8), ("regular",), ("regular",), 7, 1),
  (("D",16), ("regular",), ("regular",), 5, 1),
  (("SO2",0), ("irrep",0), ("irrep",1), 5, 1),
  (("SO2",0), ("irrep",1), ("irrep",1), 5, 1),
  (("SO2",0), ("irrep",1), ("irrep",2), 7, 1),
  (("SO2",0), ("irrep",2), ("irrep",0), 9, 1),
  (("O2",0), ("irrep",0,0), ("irrep",1,1), 5, 1),
  (("O2",0), ("irrep",1,1), ("irrep",1,2), 7, 1),
  (("O2",0), ("irrep",1,0), ("irrep",0,0), 5, 1),
]
for g, a, b, k, dil in cases:
    gs = space(g)
    ti, to = nn.FieldType(gs, [rep(gs, a)]), nn.FieldType(gs, [rep(gs, b)])
    try:
        conv = nn.R2Conv(ti, to, kernel_size=k, dilation=dil, padding=0, initialize=False)
        d = conv.basisexpansion.dimension()
    except Exception as e:
        d = "error: " + type(e).__name__
    print(json.dumps({"group": g, "input": a, "output": b, "kernel": k, "dilation": dil, "dim": d}), flush=True)
