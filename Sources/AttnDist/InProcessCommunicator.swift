// N ranks as N threads of one process, for tests: the data-parallel step, the trainer and evaluation
// run with real concurrency, uneven shares and a second communication thread, without mpirun. The
// ranks share memory, so a collective is: every rank publishes its buffer, a barrier, each rank
// reads what it needs from the others', a barrier. The reduce-scatter adds the ranks' terms in the
// order of the MPI shim's ring (CMPIShim/shim.c), so both give every share the same bits; the other
// reductions add in rank order on every rank.
// A rank whose body throws breaks the group: the others leave their collective with an error
// instead of waiting for ever.

import Foundation

public final class InProcessCommunicator: Communicator, @unchecked Sendable {
  public let rank: Int
  public var size: Int { group.size }
  public var localRank: Int { rank }
  public var localSize: Int { group.size }
  /// Each rank's collectives may come from any thread, one at a time, as a communication thread needs.
  public var threadSupport: ThreadSupport { .serialized }
  private let group: Group

  private init(rank: Int, group: Group) {
    self.rank = rank
    self.group = group
  }

  /// Runs `body` once per rank, each on its own thread with its own communicator, and returns the
  /// results in rank order; rethrows the first error a rank threw.
  public static func run<Value>(ranks: Int, _ body: @escaping @Sendable (InProcessCommunicator) throws -> Value)
    throws -> [Value]
  {
    precondition(ranks >= 1, "a group needs at least one rank")
    let group = Group(size: ranks)
    let outcomes = Outcomes<Value>(count: ranks)
    let done = DispatchGroup()
    for rank in 0..<ranks {
      done.enter()
      let thread = Thread {
        let communicator = InProcessCommunicator(rank: rank, group: group)
        do {
          outcomes.set(rank, .success(try body(communicator)))
        } catch {
          outcomes.set(rank, .failure(error))
          group.breakUp()
        }
        done.leave()
      }
      thread.name = "in-process rank \(rank)"
      thread.stackSize = 8 << 20
      thread.start()
    }
    done.wait()
    return try outcomes.values()
  }

  // MARK: - Collectives

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { try allreduce(buffer, +) }
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws { try allreduce(buffer, +) }
  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Float>) throws { try allreduce(buffer, max) }
  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws { try allreduce(buffer, max) }

  public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, scratch: UnsafeMutableBufferPointer<Float>) throws {
    try group.exchange(rank, UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count) { buffers in
      let mine = share(of: buffer.count)
      guard !mine.isEmpty else { return }
      // The ring's order: share j's total is x_j + (x_{j-1} + (... + (x_{j+2} + x_{j+1}))).
      let ordered = (1...size).map { buffers[(rank + $0) % size]!.assumingMemoryBound(to: Float.self) }
      for i in mine {
        var total = ordered[0][i]
        for term in ordered.dropFirst() { total = term[i] + total }
        buffer[i] = total
      }
    }
  }

  public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    try group.exchange(rank, UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count) { buffers in
      for owner in 0..<size where owner != rank && buffer.count > 0 {
        let share = (buffer.count * owner / size)..<(buffer.count * (owner + 1) / size)
        let source = buffers[owner]!.assumingMemoryBound(to: Float.self)
        for i in share { buffer[i] = source[i] }
      }
    }
  }

  public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
    precondition((0..<size).contains(root), "broadcast root \(root) is not a rank in 0..<\(size)")
    try group.exchange(rank, buffer.baseAddress, count: buffer.count) { buffers in
      guard rank != root, let destination = buffer.baseAddress, let source = buffers[root] else { return }
      destination.copyMemory(from: source, byteCount: buffer.count)
    }
  }

  public func barrier() throws { try group.exchange(rank, nil, count: 0) { _ in } }

  public func finalize() throws {}

  /// Ends the whole process: the ranks are its threads.
  public func abort(code: Int32) -> Never {
    fflush(nil)
    exit(code)
  }

  /// An elementwise reduction whose result every rank computes alike: the terms in rank order.
  /// Each rank reduces its share of the elements in place, then gathers the others'.
  private func allreduce<T>(_ buffer: UnsafeMutableBufferPointer<T>, _ combine: (T, T) -> T) throws {
    try group.exchange(rank, UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count) { buffers in
      guard buffer.count > 0 else { return }
      let terms = buffers.map { $0!.assumingMemoryBound(to: T.self) }
      for i in share(of: buffer.count) {
        var total = terms[0][i]
        for term in terms.dropFirst() { total = combine(total, term[i]) }
        buffer[i] = total
      }
    }
    try group.exchange(rank, UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count) { buffers in
      for owner in 0..<size where owner != rank && buffer.count > 0 {
        let source = buffers[owner]!.assumingMemoryBound(to: T.self)
        for i in (buffer.count * owner / size)..<(buffer.count * (owner + 1) / size) { buffer[i] = source[i] }
      }
    }
  }
}

public struct InProcessGroupBroken: Error, CustomStringConvertible {
  public var description: String { "another in-process rank failed, so this collective cannot complete" }
}

extension InProcessCommunicator {
  /// What the ranks share: the buffer each has published for the collective in progress, and a
  /// barrier that counts arrivals by generation.
  fileprivate final class Group: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var published: [UnsafeMutableRawPointer?]
    private var counts: [Int]
    private var arrived = 0
    private var generation = 0
    private var broken = false

    init(size: Int) {
      self.size = size
      published = Array(repeating: nil, count: size)
      counts = Array(repeating: 0, count: size)
    }

    /// Publishes `buffer`, waits for every rank, runs `work` on everyone's buffers (which no rank
    /// changes outside its own part until the second barrier), and waits again.
    func exchange(
      _ rank: Int, _ buffer: UnsafeMutableRawPointer?, count: Int, _ work: ([UnsafeMutableRawPointer?]) throws -> Void
    ) throws {
      condition.lock()
      published[rank] = buffer
      counts[rank] = count
      condition.unlock()
      try wait()
      condition.lock()
      let buffers = published
      let agreed = counts.allSatisfy { $0 == count }
      condition.unlock()
      precondition(agreed, "ranks entered a collective with different element counts: \(counts)")
      try work(buffers)
      try wait()
    }

    func breakUp() {
      condition.lock()
      broken = true
      condition.broadcast()
      condition.unlock()
    }

    private func wait() throws {
      condition.lock()
      defer { condition.unlock() }
      if broken { throw InProcessGroupBroken() }
      let mine = generation
      arrived += 1
      if arrived == size {
        arrived = 0
        generation += 1
        condition.broadcast()
        return
      }
      while generation == mine && !broken { condition.wait() }
      if generation == mine { throw InProcessGroupBroken() }
    }
  }

  /// Each rank's result, filled in by its thread.
  fileprivate final class Outcomes<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<Value, Error>?]

    init(count: Int) { results = Array(repeating: nil, count: count) }

    func set(_ rank: Int, _ result: Result<Value, Error>) {
      lock.lock()
      results[rank] = result
      lock.unlock()
    }

    /// The values in rank order, or the first real error (a broken group is only its consequence).
    func values() throws -> [Value] {
      lock.lock()
      defer { lock.unlock() }
      let failures = results.compactMap { result -> Error? in
        if case .failure(let error) = result { return error }
        return nil
      }
      if let first = failures.first(where: { !($0 is InProcessGroupBroken) }) ?? failures.first { throw first }
      return results.map { try! $0!.get() }
    }
  }
}
