// The machine's peak single-precision FMA rate, measured: MFU divides by what this CPU can do, not
// by a number from a data sheet (nanoGPT hard-codes an A100 and shows 104% on an H100).
#pragma once

/// The widest FMA this CPU runs, in floats per instruction: 16 (AVX-512), 8 (AVX2+FMA) or 0 (none).
int attn_fma_width(void);

/// Runs `rounds` rounds of independent FMA chains at the widest width and returns the FLOPs done
/// (an FMA counts as two). The caller times it.
double attn_fma_probe(long rounds);
