"""Compile every gseq.ops Triton kernel variant for sm_90 (H100) without a GPU: Triton's frontend + ptxas.

The interpreter pass (TRITON_INTERPRET=1) checks what the kernels compute but not that they compile;
this script checks the latter, and that no tensor of offsets is multiplied in int32 in the Triton IR
(``f * stride`` in int32 wraps past 2**31: a transposed [2.45M, 1000] input). Run it without
TRITON_INTERPRET (tests/ops/test_ops_triton.py does, in a subprocess). Prints one line per variant and
``ALL OK`` at the end; exits 1 on any failure.
"""
import re
import sys
import traceback

import triton
import triton.language as tl
from triton.compiler import ASTSource
from triton.backends.compiler import GPUTarget
from gseq.ops import _triton as K

target = GPUTarget("cuda", 90, 32)
ok = True

def compile_one(fn, sig, consts, name):
    global ok
    try:
        src = ASTSource(fn=fn, signature=sig, constexprs=consts)
        cc = triton.compile(src, target=target)
        assert "cubin" in cc.asm, name
        i32 = [line.strip() for line in cc.asm["ttir"].splitlines() if re.search(r"arith\.muli .*tensor<[^>]*xi32>", line)]
        assert not i32, f"{name}: int32 offset arithmetic in the TTIR: {i32}"
        print("OK  ", name)
    except Exception:
        ok = False
        print("FAIL", name); traceback.print_exc(limit=3)

# every constexpr branch at least once per dtype (the block shapes alternate between dtypes)
CHUNK_CASES = [(K.REDUCE_SUM, False, False), (K.REDUCE_SUM, True, True), (K.REDUCE_MAX, True, False),
               (K.REDUCE_MIN, False, False)]  # REDUCE, HAS_VAL, MASKED
for dt, ptr, acc, accp, (be, bf) in (("fp32", "*fp32", tl.float32, "*fp32", (16, 128)),
                                     ("fp64", "*fp64", tl.float64, "*fp64", (32, 16)),
                                     ("fp16", "*fp16", tl.float32, "*fp32", (32, 32))):
    for reduce, has_val, masked in CHUNK_CASES:
        extreme = reduce != K.REDUCE_SUM  # max/min write arg arrays
        sig = {"x_ptr": ptr, "val_ptr": ptr, "col_ptr": "*i64", "eid_ptr": "*i64", "arg_ptr": "*i64",
               "crow_ptr": "*i64", "cstart_ptr": "*i64", "cend_ptr": "*i64", "cslot_ptr": "*i64",
               "out_ptr": ptr, "oarg_ptr": "*i64" if extreme else ptr, "part_ptr": accp,
               "parg_ptr": "*i64" if extreme else accp,
               "F": "i32", "NNZ": "i32", "sx0": "i32", "sx1": "i32", "so0": "i32", "sa0": "i32",
               "HAS_VAL": "constexpr", "REDUCE": "constexpr", "MASKED": "constexpr", "ACC": "constexpr",
               "BLOCK_E": "constexpr", "BLOCK_F": "constexpr"}
        consts = {"HAS_VAL": has_val, "REDUCE": reduce, "MASKED": masked, "ACC": acc, "BLOCK_E": be, "BLOCK_F": bf}
        compile_one(K._spmm_chunk_kernel, sig, consts, f"chunk {dt} reduce={reduce} val={has_val} masked={masked}")
    for reduce in (K.REDUCE_SUM, K.REDUCE_MIN):
        extreme = reduce != K.REDUCE_SUM
        sig = {"part_ptr": accp, "parg_ptr": "*i64" if extreme else accp, "srow_ptr": "*i64", "sptr_ptr": "*i64",
               "out_ptr": ptr, "oarg_ptr": "*i64" if extreme else ptr, "F": "i32", "NNZ": "i32", "so0": "i32",
               "REDUCE": "constexpr", "ACC": "constexpr", "BLOCK_F": "constexpr"}
        compile_one(K._combine_kernel, sig, {"REDUCE": reduce, "ACC": acc, "BLOCK_F": bf}, f"combine {dt} {reduce}")
    for masked in (False, True):
        sig = {"a_ptr": ptr, "b_ptr": ptr, "row_ptr": "*i64", "col_ptr": "*i64", "arg_ptr": "*i64", "out_ptr": ptr,
               "F": "i32", "NNZ": "i32", "sa0": "i32", "sa1": "i32", "sb0": "i32", "sb1": "i32", "sg0": "i32",
               "MASKED": "constexpr", "ACC": "constexpr", "BLOCK_E": "constexpr", "BLOCK_F": "constexpr"}
        consts = {"MASKED": masked, "ACC": acc, "BLOCK_E": 64, "BLOCK_F": 32}
        compile_one(K._sddmm_kernel, sig, consts, f"sddmm {dt} masked={masked}")
print("ALL OK" if ok else "SOME FAILED")
sys.exit(0 if ok else 1)
