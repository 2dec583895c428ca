// The training line a terminal shows in place of a line per record:
//   step 1200/2000 [###########.........]  60% | loss 1.9312 | 25306 tok/s | mfu 41.3% | ETA 0:32
// redrawn at most ten times a second. The ETA comes from this start's own step rate (evaluation and
// checkpoint time paused out), so a resumed run does not count the steps it did not run.

import Foundation

public struct ProgressBar {
  public let totalSteps: Int
  private let firstStep: Int
  private let start: Double
  private var paused = 0.0
  private var step: Int
  private var loss = Double.nan
  private var latest: MetricsRecord?
  private var lastDrawn = -Double.infinity
  static let width = 20
  static let redrawSeconds = 0.1

  public init(totalSteps: Int, firstStep: Int, start: Double) {
    self.totalSteps = totalSteps
    self.firstStep = firstStep
    self.step = firstStep
    self.start = start
  }

  public mutating func pause(_ seconds: Double) { paused += seconds }

  /// After each step: its loss, and the newest metrics record for the rates.
  public mutating func update(step: Int, loss: Double, now: Double, latest record: MetricsRecord?) {
    self.step = step
    self.loss = loss
    if let record { latest = record }
  }

  /// The line when a redraw is due (or `force`d), else nil.
  public mutating func lineIfDue(now: Double, force: Bool = false) -> String? {
    guard force || now - lastDrawn >= Self.redrawSeconds else { return nil }
    lastDrawn = now
    return line(now: now)
  }

  public func line(now: Double) -> String {
    let fraction = totalSteps > 0 ? min(1, Double(step) / Double(totalSteps)) : 1
    var parts = ["step \(step)/\(totalSteps) \(Self.bar(fraction))", String(format: "loss %.4f", loss)]
    if let rate = latest?.tokensPerSecond { parts.append(String(format: "%.0f tok/s", rate)) }
    if let mfu = latest?.mfu { parts.append(String(format: "mfu %.1f%%", mfu * 100)) }
    let done = step - firstStep
    let seconds = now - start - paused
    if done > 0 && seconds > 0 && step < totalSteps {
      parts.append("ETA " + Self.duration(Double(totalSteps - step) * seconds / Double(done)))
    } else if step >= totalSteps {
      parts.append("done")
    }
    return parts.joined(separator: " | ")
  }

  /// "[##########..........]  50%"
  public static func bar(_ fraction: Double) -> String {
    let clamped = min(1, max(0, fraction))
    let filled = Int((clamped * Double(width)).rounded(.down))
    return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
      + String(format: "%3.0f%%", clamped * 100)
  }

  /// "0:07", "12:30", "3:05:00".
  public static func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    let (h, m, r) = (s / 3600, s / 60 % 60, s % 60)
    return h > 0 ? String(format: "%d:%02d:%02d", h, m, r) : String(format: "%d:%02d", m, r)
  }
}
