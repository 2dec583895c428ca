// The data-parallel step without mpirun: ranks are threads (InProcessCommunicator), so the
// communication thread, uneven shares and tiny buckets run in the unit tests at 1, 2, 3 and 4 ranks.
// Gradients here are small integers, whose sums are exact in any order, so every expectation is
// exact; the order of the additions is checked separately, with values where it matters.

import AttnCore
import Testing

@testable import AttnDist

@Suite struct ShardedDataParallelTests {
  /// A layout with tensors of many sizes (11, 6, 18, 36, 24, 6, ...), none a multiple of the ranks.
  static let layout = ParameterLayout(ModelShape(vocabSize: 11, blockSize: 5, layers: 2, heads: 2, channels: 6))

  /// Rank r's gradient for element i: an integer in -8...8, different on every rank.
  static func gradient(rank: Int, _ i: Int) -> Float { Float((i * 7 + rank * 13) % 17 - 8) }

  /// Announces the layout's tensors from the end of the buffer down, as backward does.
  static func announce(_ dataParallel: ShardedDataParallel) {
    for tensor in layout.tensors.reversed() { dataParallel.gradientsReady(tensor.range) }
  }

  struct Outcome: Sendable {
    let shares: [Range<Int>]
    let gradients: [Float]
    let sumOfSquares: Double
    let parameters: [Float]
  }

  /// One step's reduction and gather on every rank: gradients reduced, then each rank writes
  /// 1000 + rank into the parameters it owns (NaN elsewhere) and the gather completes them.
  static func step(ranks: Int, bucketElements: Int, reduceDuringBackward: Bool) throws -> [Outcome] {
    try InProcessCommunicator.run(ranks: ranks) { communicator in
      let gradients = FloatBuffer(count: layout.count)
      for i in 0..<layout.count { gradients.pointer[i] = gradient(rank: communicator.rank, i) }
      let dataParallel = ShardedDataParallel(
        communicator: communicator, gradients: gradients, layout: layout, bucketElements: bucketElements,
        reduceDuringBackward: reduceDuringBackward)
      dataParallel.beginStep()
      announce(dataParallel)
      try dataParallel.finish()
      let parameters = FloatBuffer(count: layout.count)
      parameters.buffer.update(repeating: .nan)
      for share in dataParallel.ownedShares {
        for i in share { parameters.pointer[i] = Float(1000 + communicator.rank) }
      }
      try dataParallel.allgatherShares(of: parameters)
      return Outcome(
        shares: Array(dataParallel.ownedShares), gradients: Array(gradients.buffer),
        sumOfSquares: dataParallel.ownedSumOfSquares, parameters: Array(parameters.buffer))
    }
  }

  @Test(arguments: [1, 2, 3, 4], [7, 50, 1 << 20])
  func eachElementIsSummedOnceByItsOwnerAndGatheredEverywhere(ranks: Int, bucketElements: Int) throws {
    for reduceDuringBackward in [true, false] {
      let outcomes = try Self.step(ranks: ranks, bucketElements: bucketElements, reduceDuringBackward: reduceDuringBackward)
      let total = (0..<Self.layout.count).map { i in (0..<ranks).reduce(Float(0)) { $0 + Self.gradient(rank: $1, i) } }

      // The owned shares tile the buffer: every element has exactly one owner.
      var owner = [Int?](repeating: nil, count: Self.layout.count)
      for (rank, outcome) in outcomes.enumerated() {
        for share in outcome.shares {
          for i in share {
            #expect(owner[i] == nil, "element \(i) owned by ranks \(owner[i]!) and \(rank)")
            owner[i] = rank
          }
        }
      }
      #expect(owner.allSatisfy { $0 != nil }, "elements without an owner")
      if ranks > 1 && bucketElements < 100 {
        // Tiny buckets: every rank owns part of the buffer, in shares of uneven size.
        #expect(outcomes.allSatisfy { !$0.shares.isEmpty })
        #expect(Set(outcomes.flatMap { $0.shares.map(\.count) }).count > 1)
      }

      // The owner holds the sum over ranks; the sums of squares of the shares add up to the whole.
      for i in 0..<Self.layout.count {
        guard let rank = owner[i] else { continue }
        #expect(outcomes[rank].gradients[i] == total[i], "element \(i) on its owner \(rank)")
      }
      let squares = total.reduce(0.0) { $0 + Double($1) * Double($1) }
      #expect(outcomes.reduce(0.0) { $0 + $1.sumOfSquares } == squares)

      // After the gather every rank holds every owner's values.
      for (rank, outcome) in outcomes.enumerated() {
        let expected = owner.map { Float(1000 + $0!) }
        #expect(outcome.parameters == expected, "rank \(rank) after the gather")
      }
    }
  }

  /// With values whose sums depend on the order of additions, reducing during backward and after it
  /// give the same bits: the same buckets in the same order.
  @Test(arguments: [2, 3, 4])
  func reducingDuringOrAfterBackwardGivesTheSameBits(ranks: Int) throws {
    func run(_ during: Bool) throws -> [[UInt32]] {
      try InProcessCommunicator.run(ranks: ranks) { communicator in
        let gradients = FloatBuffer(count: Self.layout.count)
        let key = RandomKey(seed: 3, purpose: .initialization).then(communicator.rank)
        for i in 0..<Self.layout.count { gradients.pointer[i] = key.normal(i) * 1e-3 }
        let dataParallel = ShardedDataParallel(
          communicator: communicator, gradients: gradients, layout: Self.layout, bucketElements: 9,
          reduceDuringBackward: during)
        dataParallel.beginStep()
        Self.announce(dataParallel)
        try dataParallel.finish()
        return dataParallel.ownedShares.flatMap { share in share.map { gradients.pointer[$0].bitPattern } }
      }
    }
    #expect(try run(true) == run(false))
  }

  /// The reduce-scatter adds the ranks' terms in the order of the shim's ring: share j's total is
  /// x_j + (x_{j-1} + (... + (x_{j+2} + x_{j+1}))). Values where the order shows: 1, 2^-24 and -1
  /// sum to 0 or 2^-24 depending on which two meet first.
  @Test func theReduceScatterAddsInTheRingsOrder() throws {
    let terms: [Float] = [1, 0x1p-24, -1]
    let results = try InProcessCommunicator.run(ranks: 3) { communicator in
      var buffer = [Float](repeating: terms[communicator.rank], count: 3)
      var scratch = [Float](repeating: 0, count: 3)
      try buffer.withUnsafeMutableBufferPointer { b in
        try scratch.withUnsafeMutableBufferPointer { try communicator.reduceScatterSum(b, scratch: $0) }
      }
      return buffer[communicator.rank]
    }
    for j in 0..<3 {
      let ring = terms[j] + (terms[(j + 2) % 3] + terms[(j + 1) % 3])
      #expect(results[j].bitPattern == ring.bitPattern, "share \(j): \(results[j]), the ring gives \(ring)")
    }
    // The orders do differ here, so the check above could fail.
    #expect(Set(results.map(\.bitPattern)).count > 1)
  }

  @Test func aRankThatFailsEndsTheOthersCollectivesInsteadOfHangingThem() {
    struct Failure: Error {}
    #expect(throws: Failure.self) {
      _ = try InProcessCommunicator.run(ranks: 3) { communicator in
        if communicator.rank == 1 { throw Failure() }
        try communicator.barrier()
        return 0
      }
    }
  }

  @Test func collectivesOfTheInProcessWorld() throws {
    let results = try InProcessCommunicator.run(ranks: 4) { communicator in
      var values: [Double] = [Double(communicator.rank), -Double(communicator.rank), 1]
      try communicator.allreduceSum(&values)
      var maxima: [Double] = [Double(communicator.rank), -Double(communicator.rank)]
      try communicator.allreduceMax(&maxima)
      var bytes: [UInt8] = communicator.rank == 2 ? [7, 8, 9] : []
      try communicator.broadcast(&bytes, root: 2)
      return (values, maxima, bytes)
    }
    for (values, maxima, bytes) in results {
      #expect(values == [6, -6, 4])
      #expect(maxima == [3, 0])
      #expect(bytes == [7, 8, 9])
    }
  }
}
