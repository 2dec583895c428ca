// What one core of this machine can compute, measured rather than looked up: chains of independent
// FMAs at the widest vector width the CPU has (CPeakProbe), timed in short slices. The fastest
// slice is the figure: a slice that another process interrupted only runs slower.

import CPeakProbe

#if canImport(Glibc)
  import Glibc
#endif

public enum PeakFLOPs {
  /// Floats per FMA instruction: 16 (AVX-512), 8 (AVX2 with FMA) or 0 (neither).
  public static var vectorWidth: Int { Int(attn_fma_width()) }

  /// Single-precision FLOPs per second of the calling thread's core: the best of `slices` runs of
  /// about `sliceSeconds` each.
  public static func measurePerCore(slices: Int = 5, sliceSeconds: Double = 0.01) -> Double {
    // Calibrate the slice length once: 1000 rounds take about a microsecond at the FMA rate.
    var rounds = 1_000
    while true {
      let start = Profiler.now()
      _ = attn_fma_probe(rounds)
      if Profiler.now() - start >= sliceSeconds / 4 || rounds > 1 << 30 { break }
      rounds *= 4
    }
    var best = 0.0
    for _ in 0..<slices {
      let start = Profiler.now()
      let flops = attn_fma_probe(rounds)
      let seconds = Profiler.now() - start
      if seconds > 0 { best = max(best, flops / seconds) }
    }
    return best
  }
}
