// The pool's hand-off between a spinning and a sleeping worker is lock-free, so it is tested by
// volume: thousands of jobs of random sizes and lengths, with pauses long enough for the workers to
// fall asleep, at several thread counts. Every index of every job must run exactly once. (A first
// version ran a job twice when the caller was preempted between publishing a job and waking a
// worker that had already run it while spinning; this test caught it within a few hundred jobs.)

@testable import AttnCore
import Testing

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

@Suite struct WorkerPoolTests {
  struct CountVisits: ParallelKernel {
    let visits: UnsafeMutablePointer<Int>
    let busyIterations: Int

    func run(_ range: Range<Int>, thread: Int) {
      var x = 0
      for i in 0..<busyIterations { x &+= i }
      for i in range { visits[i] &+= 1 &+ (x & 0) }
    }
  }

  @Test(arguments: [2, 3, 4])
  func everyIndexRunsExactlyOnce(threads: Int) {
    let pool = WorkerPool(threads: threads)
    let visits = UnsafeMutablePointer<Int>.allocate(capacity: 64)
    defer { visits.deallocate() }
    let random = RandomKey(seed: UInt64(threads), purpose: .initialization)
    var draw = 0
    func next(_ bound: Int) -> Int {
      draw += 1
      return min(bound - 1, Int(random.uniform(draw) * Float(bound)))
    }
    var wrong = 0
    for _ in 0..<1500 {
      let count = 1 + next(50)
      visits.update(repeating: 0, count: count)
      let busy = next(3) == 0 ? next(100_000) : 0
      pool.parallelFor(count, CountVisits(visits: visits, busyIterations: busy))
      for i in 0..<count where visits[i] != 1 { wrong += 1 }
      // Long enough for the workers to stop spinning and sleep.
      if next(40) == 0 { usleep(UInt32(200 + next(1500))) }
    }
    #expect(wrong == 0, "\(wrong) indices did not run exactly once")
  }
}
