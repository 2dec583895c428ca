// Rank 0 speaks: one line per event on stdout, and for progress and evaluation the same figures as
// one JSON object per line in <run_dir>/metrics.jsonl. Other ranks compute the same numbers and stay
// quiet, except for errors, which every rank reports on stderr.

import AttnFormats
import Foundation

/// One progress record: a line on stdout and an object in metrics.jsonl, keys in this order.
public struct MetricsRecord: Equatable, Sendable {
  public var step: Int
  /// Mean loss of the step's global batch.
  public var trainLoss: Double
  public var learningRate: Double
  /// Training tokens per second since the previous record, all ranks together; nil when the record
  /// is only there for an evaluation.
  public var tokensPerSecond: Double?
  /// Training tokens processed so far, all ranks together (a classifier's padded ones included).
  public var tokens: Int?
  /// Model FLOPs utilisation over the same window: the model's FLOPs per token (ModelShape.
  /// trainingFLOPsPerToken) times tokensPerSecond, over the measured peak of the cores the job uses.
  public var mfu: Double?
  /// Mean wall seconds per optimizer step over the window.
  public var stepSeconds: Double?
  /// The global gradient norm of this step before clipping, and the fraction of the window's
  /// steps that clipping scaled down: instability shows here before it shows in the loss.
  public var gradientNorm: Double?
  public var clipFraction: Double?
  /// Resident memory of rank 0, MiB.
  public var residentMiB: Double?
  /// Only when the dev set was evaluated at this step.
  public var devLoss: Double?
  /// A classifier's, with devLoss.
  public var devAccuracy: Double?
  public var devMacroF1: Double?
  /// Training wall time of the run, carried across resumes.
  public var elapsedSeconds: Double

  public init(
    step: Int, trainLoss: Double, learningRate: Double, tokensPerSecond: Double? = nil, devLoss: Double? = nil,
    elapsedSeconds: Double
  ) {
    self.step = step
    self.trainLoss = trainLoss
    self.learningRate = learningRate
    self.tokensPerSecond = tokensPerSecond
    self.devLoss = devLoss
    self.elapsedSeconds = elapsedSeconds
  }

  /// "step 2000/2000 | loss 1.7550 | lr 1.00e-04 | 25306 tok/s | mfu 41.3% | dev loss 1.8905 | 72.5s"
  public func line(maxSteps: Int) -> String {
    var parts = ["step \(step)/\(maxSteps)", String(format: "loss %.4f", trainLoss), String(format: "lr %.2e", learningRate)]
    if let tokensPerSecond { parts.append(String(format: "%.0f tok/s", tokensPerSecond)) }
    if let mfu { parts.append(String(format: "mfu %.1f%%", mfu * 100)) }
    if let devLoss { parts.append(String(format: "dev loss %.4f", devLoss)) }
    if let devAccuracy { parts.append(String(format: "dev accuracy %.4f", devAccuracy)) }
    if let devMacroF1 { parts.append(String(format: "macro-F1 %.4f", devMacroF1)) }
    parts.append(String(format: "%.1fs", elapsedSeconds))
    return parts.joined(separator: " | ")
  }

  public var json: JSONValue {
    var members: [(key: String, value: JSONValue)] = [
      (key: "step", value: JSONValue(integer: step)), (key: "train_loss", value: Self.number(trainLoss)),
      (key: "lr", value: Self.number(learningRate)),
    ]
    if let tokensPerSecond { members.append((key: "tokens_per_s", value: Self.number(tokensPerSecond))) }
    if let tokens { members.append((key: "tokens", value: JSONValue(integer: tokens))) }
    if let mfu { members.append((key: "mfu", value: Self.number(mfu))) }
    if let stepSeconds { members.append((key: "step_s", value: Self.number(stepSeconds))) }
    if let gradientNorm { members.append((key: "grad_norm", value: Self.number(gradientNorm))) }
    if let clipFraction { members.append((key: "clip_fraction", value: Self.number(clipFraction))) }
    if let residentMiB { members.append((key: "rss_mib", value: Self.number(residentMiB))) }
    if let devLoss { members.append((key: "dev_loss", value: Self.number(devLoss))) }
    if let devAccuracy { members.append((key: "dev_accuracy", value: Self.number(devAccuracy))) }
    if let devMacroF1 { members.append((key: "dev_macro_f1", value: Self.number(devMacroF1))) }
    members.append((key: "elapsed_s", value: Self.number(elapsedSeconds)))
    return .object(members)
  }

  /// The record as TensorBoard scalars: train/, dev/ and system/ groups, the figures present only.
  public var scalars: [(tag: String, value: Double)] {
    let figures: [(String, Double?)] = [
      ("train/loss", trainLoss), ("train/learning_rate", learningRate), ("train/grad_norm", gradientNorm),
      ("train/clip_fraction", clipFraction), ("dev/loss", devLoss), ("dev/accuracy", devAccuracy),
      ("dev/macro_f1", devMacroF1), ("system/tokens_per_s", tokensPerSecond), ("system/mfu", mfu),
      ("system/step_s", stepSeconds), ("system/rss_mib", residentMiB),
    ]
    return figures.compactMap { tag, value in value.map { (tag: tag, value: $0) } }
  }

  /// A whole number is written without a fraction (a rate of 0, say), as the file always had it.
  private static func number(_ x: Double) -> JSONValue {
    x == x.rounded() && abs(x) < 1e15 ? JSONValue(integer: Int(x)) : JSONValue(number: x)
  }
}

public final class RunLog {
  public let isSpeaker: Bool
  /// stdout is a terminal: progress is one line redrawn in place, kept at the bottom while other
  /// lines print above it; otherwise (a pipe, a Slurm log) every line stays as printed.
  public let isTerminal: Bool
  private var metrics: FileHandle?
  private var metricsFailed = false
  private var tensorBoard: TensorBoardWriter?
  private var tensorBoardFailed = false
  /// The progress line at the bottom of the terminal, redrawn after any line printed above it.
  private var shownProgress: String?
  private var lastLine = Stopwatch()
  /// Off a terminal, a long piece of work (a whole-dev evaluation, preparing shards) still says
  /// where it is this often, so a log never falls silent for minutes.
  public var heartbeatSeconds = 30.0

  public init(isSpeaker: Bool, isTerminal: Bool = false) {
    self.isSpeaker = isSpeaker
    self.isTerminal = isTerminal
  }

  /// Starts appending to metrics.jsonl (rank 0 only).
  public func openMetrics(path: String) throws {
    guard isSpeaker else { return }
    if !FileManager.default.fileExists(atPath: path) {
      guard FileManager.default.createFile(atPath: path, contents: nil) else {
        throw InputError(file: path, problem: "cannot create the metrics file")
      }
    }
    guard let handle = FileHandle(forWritingAtPath: path) else {
      throw InputError(file: path, problem: "cannot open the metrics file for writing")
    }
    handle.seekToEndOfFile()
    metrics = handle
  }

  /// Starts a new event file in `directory` (rank 0 only). A start from step `step` > 0 marks the
  /// restart there, so a TensorBoard that still holds the older files' later steps drops them.
  public func openTensorBoard(directory: String, continuingFrom step: Int) throws {
    guard isSpeaker else { return }
    let writer = try TensorBoardWriter(directory: directory)
    if step > 0 { writer.markRestart(atStep: step + 1, wallTime: Date().timeIntervalSince1970) }
    try writer.flush()
    tensorBoard = writer
  }

  public func say(_ line: String) {
    guard isSpeaker else { return }
    // Unbuffered: under mpirun, stdout is a pipe and buffered lines would arrive late or be lost.
    write(line + "\n", to: STDOUT_FILENO)
  }

  /// A progress report: on a terminal it replaces the previous one on the same line; otherwise it is
  /// a line of its own when `final` (a piece of work done) or when nothing was printed for
  /// heartbeatSeconds, so logs stay short.
  public func progress(_ line: String, final: Bool) {
    guard isSpeaker else { return }
    if isTerminal {
      let fitted = Self.fitted(line)
      Self.put("\r\u{1B}[K\(fitted)\(final ? "\n" : "")", to: STDOUT_FILENO)
      shownProgress = final ? nil : fitted
    } else if final || lastLine.seconds >= heartbeatSeconds {
      say(line)
    }
  }

  /// A report of `what` ("evaluating dev") to call after each of `total` pieces, on rank 0: the
  /// count, a bar and an ETA, through `progress`; the line is erased when the work is done.
  public func progressReporter(_ what: String) -> (_ done: Int, _ total: Int) -> Void {
    guard isSpeaker else { return { _, _ in } }
    let clock = Stopwatch()
    var lastDrawn = -Double.infinity
    return { [self] done, total in
      if done >= total {
        eraseProgress()
        return
      }
      let now = clock.seconds
      guard now - lastDrawn >= ProgressBar.redrawSeconds else { return }
      lastDrawn = now
      let fraction = total > 0 ? Double(done) / Double(total) : 1
      let eta = done > 0 ? " | ETA " + ProgressBar.duration(now * Double(total - done) / Double(done)) : ""
      progress("\(what): \(done)/\(total) \(ProgressBar.bar(fraction))\(eta)", final: false)
    }
  }

  /// Removes a terminal's progress line: the work it showed is done and its result printed next.
  public func eraseProgress() {
    guard shownProgress != nil else { return }
    shownProgress = nil
    Self.put("\r\u{1B}[K", to: STDOUT_FILENO)
  }

  /// Ends a progress line on a terminal: it stays as last drawn, and later output starts below it.
  public func endProgress() {
    guard shownProgress != nil else { return }
    shownProgress = nil
    Self.put("\n", to: STDOUT_FILENO)
  }

  /// Information that must not mix with a command's results on stdout.
  public func note(_ line: String) {
    guard isSpeaker else { return }
    write(line + "\n", to: STDERR_FILENO)
  }

  public func warn(_ line: String) {
    guard isSpeaker else { return }
    write("warning: \(line)\n", to: STDERR_FILENO)
  }

  /// The record in metrics.jsonl, and its line on stdout; on a terminal, where the progress bar
  /// shows the training figures, only a record with dev figures gets a line.
  public func record(_ record: MetricsRecord, maxSteps: Int) {
    if !isTerminal || record.devLoss != nil { say(record.line(maxSteps: maxSteps)) }
    guard isSpeaker else { return }
    if let metrics, !Self.put(record.json.description + "\n", to: metrics.fileDescriptor), !metricsFailed {
      // Once: a full disk must not end a healthy run, nor fill the log with the same warning.
      metricsFailed = true
      warn("metrics.jsonl could not be written (\(String(cString: strerror(errno)))); training goes on, records are lost until it can be")
    }
    if let tensorBoard {
      tensorBoard.add(scalars: record.scalars, step: record.step, wallTime: Date().timeIntervalSince1970)
      // A failed write (a full disk) must not end a healthy run.
      do { try tensorBoard.flush() } catch {
        if !tensorBoardFailed { warn("TensorBoard events not written (\(error)); training goes on") }
        tensorBoardFailed = true
      }
    }
  }

  /// On a terminal, the line goes above the progress line, which is drawn again below it.
  private func write(_ text: String, to descriptor: Int32) {
    lastLine = Stopwatch()
    guard isTerminal, let shown = shownProgress else {
      Self.put(text, to: descriptor)
      return
    }
    Self.put("\r\u{1B}[K", to: STDOUT_FILENO)
    Self.put(text, to: descriptor)
    Self.put(shown, to: STDOUT_FILENO)
  }

  /// Writes all of `text`, unbuffered; a failure (a closed terminal after SIGHUP, a full disk) is
  /// returned, never trapped on as FileHandle.write would: losing a log line must not end a run.
  @discardableResult
  static func put(_ text: String, to descriptor: Int32) -> Bool {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
      let n = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
      if n < 0 && errno == EINTR { continue }
      if n <= 0 { return false }
      bytes = bytes.dropFirst(n)
    }
    return true
  }

  /// Cut to the terminal's width: a line that wraps cannot be redrawn in place.
  private static func fitted(_ line: String) -> String {
    var size = winsize()
    guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 1, line.count >= Int(size.ws_col) else {
      return line
    }
    return String(line.prefix(Int(size.ws_col) - 1))
  }

  public func close() {
    endProgress()
    try? tensorBoard?.close()
    tensorBoard = nil
    try? metrics?.synchronize()
    try? metrics?.close()
    metrics = nil
  }
}
