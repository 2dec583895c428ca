// Ends a job whose collective cannot complete, and says why: a thread on every rank that, twice a
// second, sends this rank's activity to the others (Heartbeats), records theirs, and judges. A rank
// waiting in a collective for longer than the deadline looks at the others: one whose progress has
// not moved for longer than its allowance (or that went silent) is the culprit. The lowest waiting
// rank then prints the roll call
//   collective deadline passed: 3 of 4 ranks waiting in reduce_scatter at step 1200 (for 41 s);
//   rank 1 last seen in forward at step 1200, 41 s ago
// and aborts the job, which ends every rank, the stopped one included (mpirun kills it).
//
// The deadline adapts to the run: the larger of `seconds` and `stepMultiple` x the last step's wall
// time, with `startupSeconds` until this start has run `startupSteps` steps (the first steps are
// slow and not yet measured), and `slowWorkSeconds` for a rank that is evaluating, checkpointing or
// starting, which may rightly take longer than a step. A rank that is merely slower than the others
// (a straggler) is not stopped; rank 0 reports it in the log.

import Foundation

public struct DeadlinePolicy: Sendable, Equatable {
  public var seconds: Double
  public var stepMultiple: Double
  public var startupSeconds: Double
  public var startupSteps: Int
  public var slowWorkSeconds: Double

  public init(seconds: Double, stepMultiple: Double, startupSeconds: Double, startupSteps: Int = 3, slowWorkSeconds: Double) {
    self.seconds = seconds
    self.stepMultiple = stepMultiple
    self.startupSeconds = startupSeconds
    self.startupSteps = startupSteps
    self.slowWorkSeconds = slowWorkSeconds
  }

  /// How long a rank doing `work` at `step` may go without progress, given the measured step time.
  public func allowance(for work: Activity, step: Int, firstStep: Int, stepSeconds: Double) -> Double {
    if work.isSlowWork { return max(slowWorkSeconds, stepDeadline(step: step, firstStep: firstStep, stepSeconds: stepSeconds)) }
    return stepDeadline(step: step, firstStep: firstStep, stepSeconds: stepSeconds)
  }

  public func stepDeadline(step: Int, firstStep: Int, stepSeconds: Double) -> Double {
    let measured = max(seconds, stepMultiple * stepSeconds)
    return step - firstStep < startupSteps ? max(startupSeconds, measured) : measured
  }
}

public final class CollectiveWatchdog: @unchecked Sendable {
  private let communicator: Communicator
  private let activity: RankActivity
  private let channel: HeartbeatChannel
  private let policy: DeadlinePolicy
  private let report: (String) -> Void
  private let lock = NSLock()
  private var stopping = false
  private var peers: [Int: Peer] = [:]
  private var lastStragglerReport = -Double.infinity
  private let started = monotonicNanoseconds()

  struct Peer {
    var beat: Heartbeat
    /// Local monotonic seconds: when the last datagram came, and when its progress last moved.
    var heard: Double
    var moved: Double
  }

  /// Exchanges heartbeat addresses (a collective: every rank calls it) and starts the thread.
  /// `report` prints a line on this rank's stderr.
  public init(communicator: Communicator, activity: RankActivity, policy: DeadlinePolicy, report: @escaping (String) -> Void) throws {
    self.communicator = communicator
    self.activity = activity
    self.policy = policy
    self.report = report
    channel = try HeartbeatChannel(communicator: communicator)
    let thread = Thread { [unowned(unsafe) self] in self.run() }
    thread.name = "collective watchdog"
    thread.start()
  }

  public func stop() { lock.withLock { stopping = true } }

  private var now: Double { Double(monotonicNanoseconds() - started) / 1e9 }

  private func run() {
    while !lock.withLock({ stopping }) {
      let mine = activity.snapshot()
      channel.send(Heartbeat(job: channel.job, rank: communicator.rank, mine))
      // A fixed pause, not a wait for the next datagram: that would answer every peer's heartbeat
      // at once and the ranks would ping-pong at network speed.
      usleep(500_000)
      let t = now
      for beat in channel.receive() {
        if var peer = peers[beat.rank] {
          if beat.progress != peer.beat.progress { peer.moved = t }
          peer.beat = beat
          peer.heard = t
          peers[beat.rank] = peer
        } else {
          peers[beat.rank] = Peer(beat: beat, heard: t, moved: t)
        }
      }
      judge(mine, now: t)
    }
  }

  private func judge(_ mine: RankActivity.Snapshot, now t: Double) {
    let first = mine.firstStep
    let stepSeconds = mine.stepSeconds
    if communicator.rank == 0 { reportStragglers(now: t) }
    guard let waitingIn = mine.collective else { return }
    let deadline = policy.stepDeadline(step: mine.step, firstStep: first, stepSeconds: stepSeconds)
    guard mine.collectiveSeconds > deadline else { return }

    // Peers never heard from count as silent since the watchdog started.
    var culprits: [(rank: Int, line: String)] = []
    var waiting = [communicator.rank]
    for rank in 0..<communicator.size where rank != communicator.rank {
      guard let peer = peers[rank] else {
        if t > deadline { culprits.append((rank, "rank \(rank) never heard from")) }
        continue
      }
      let beat = peer.beat
      let silent = t - peer.heard
      let still = t - peer.moved
      let doing = beat.collective.map { "\($0.name) (during \(beat.work.name))" } ?? beat.work.name
      // A rank whose watchdog stopped sending is stopped or gone, whatever it was doing: a rank
      // that is only busy (writing a checkpoint) keeps sending, so its work's allowance applies.
      if silent > deadline {
        culprits.append((rank, String(format: "rank %d last seen in %@ at step %d, %.0f s ago, silent since", rank, doing, beat.step, silent)))
        continue
      }
      if beat.collective != nil {
        waiting.append(rank)
        continue
      }
      if still > policy.allowance(for: beat.work, step: beat.step, firstStep: first, stepSeconds: stepSeconds) {
        culprits.append((rank, String(format: "rank %d last seen in %@ at step %d, no progress for %.0f s", rank, doing, beat.step, still)))
      }
    }
    // Every rank waits, yet the collective does not end (ranks in different collectives, or a
    // network that stopped delivering): still a deadlock, named as such after the longer allowance.
    let allWaiting = culprits.isEmpty && waiting.count == communicator.size && mine.collectiveSeconds > policy.slowWorkSeconds
    guard !culprits.isEmpty || allWaiting else { return }
    // One message for the job: from the lowest waiting rank, or from any after a grace period.
    guard waiting.min() == communicator.rank || mine.collectiveSeconds > deadline + 10 else { return }

    var lines = [
      String(
        format: "collective deadline passed: %d of %d ranks waiting in %@ at step %d (this rank for %.0f s; deadline %.0f s)",
        waiting.count, communicator.size, waitingIn.name, mine.step, mine.collectiveSeconds, deadline)
    ]
    lines += culprits.map(\.line)
    if allWaiting {
      lines.append("every rank is waiting: " + waiting.sorted().map { rank in
        rank == communicator.rank ? "rank \(rank) in \(waitingIn.name)" : "rank \(rank) in \(peers[rank]?.beat.collective?.name ?? "?") at step \(peers[rank]?.beat.step ?? -1)"
      }.joined(separator: ", "))
    }
    lines.append("ending the job (training.deadline_s and training.deadline_step_multiple set the deadline); resume from the last checkpoint")
    report(lines.joined(separator: "\n  "))
    communicator.abort(code: 1)
  }

  /// A rank whose steps take much longer than the others' is named, at most once a minute.
  private func reportStragglers(now t: Double) {
    guard t - lastStragglerReport > 60 else { return }
    var times = [(rank: 0, seconds: activity.snapshot().computeSeconds)]
    for (rank, peer) in peers where t - peer.heard < 5 { times.append((rank, peer.beat.computeSeconds)) }
    let measured = times.filter { $0.seconds > 0 }.map(\.seconds).sorted()
    guard measured.count == communicator.size, measured.count > 1 else { return }
    let median = measured[(measured.count - 1) / 2]  // the lower median: of two ranks, the faster
    let slow = times.filter { $0.seconds > 1.5 * median }
    guard !slow.isEmpty else { return }
    lastStragglerReport = t
    report(
      slow.map {
        String(
          format: "straggler: rank %d computed its share of the last step in %.3f s, %.1fx the median rank's %.3f s (the others wait for it)",
          $0.rank, $0.seconds, $0.seconds / median, median)
      }.joined(separator: "\n"))
  }
}
