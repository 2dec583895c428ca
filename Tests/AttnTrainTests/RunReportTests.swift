// The report's parts on made-up runs: axes that cover the data with round ticks, text that cannot
// break the markup, a metrics file cut off mid-line, a classifier's dev metrics plotted, and plots
// without data left out. (ReportTests renders a real run's report in Chromium.)

import AttnFormats
import Foundation
import Testing

@testable import AttnTrain

@Suite struct RunReportTests {
  @Test func axesCoverTheDataWithRoundTicks() {
    let axis = Axis(covering: [0.0137, 2.71, 1.2])
    #expect(axis.low <= 0.0137 && axis.high >= 2.71)
    #expect(axis.ticks.count >= 4 && axis.ticks.count <= 8, "\(axis.ticks)")
    let step = axis.ticks[1] - axis.ticks[0]
    #expect([0.5, 1, 2].contains { abs(step - $0) < 1e-12 }, "\(axis.ticks)")
    // One value, or all equal: a range around it, not a division by zero.
    let flat = Axis(covering: [3, 3])
    #expect(flat.low < 3 && flat.high > 3 && flat.fraction(3).isFinite)
    #expect(Axis(covering: []).ticks.count >= 2)
  }

  @Test func textIsEscapedWhereverItGoes() {
    #expect(SVGText.escape("a<b & \"c\" 'd'>") == "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;")
    let plot = LinePlot(
      id: "x", title: "<script>", xLabel: "step", yLabel: "y",
      series: [PlotSeries(name: "a\"b", points: [(x: 0, y: 1), (x: 1, y: .nan), (x: 2, y: 3)], color: "#000")])
    #expect(!plot.svg.contains("<script>") && plot.svg.contains("data-series=\"a&quot;b\""))
    // The NaN point is left out, the others joined.
    #expect(plot.svg.components(separatedBy: " L").count == 2)
  }

  @Test func aLongSeriesIsThinnedToWhatAPlotCanShowKeepingItsEnds() {
    for count in [1999, 2000, 2001, 4000, 1_000_003] {
      let points = (0..<count).map { (x: Double($0), y: Double($0 % 7)) }
      let kept = LinePlot.thinned(points)
      #expect(kept.count <= LinePlot.maximumPoints && kept.count >= min(count, LinePlot.maximumPoints / 2), "\(count): \(kept.count)")
      #expect(kept.first?.x == 0 && kept.last?.x == Double(count - 1))
      #expect(zip(kept, kept.dropFirst()).allSatisfy { $0.x < $1.x })
    }
  }

  private func runDirectory(metrics: String, plan: String? = nil) throws -> RunDirectory {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("attn-report-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let run = RunDirectory(path: path, origin: "test")
    try metrics.write(toFile: run.metricsFile, atomically: true, encoding: .utf8)
    if let plan { try plan.write(toFile: run.planFile, atomically: true, encoding: .utf8) }
    return run
  }

  @Test func aClassifiersDevMetricsArePlottedByStepAndTokensAndATornLineIsCounted() throws {
    let run = try runDirectory(
      metrics: """
        {"step":10,"train_loss":0.69,"lr":0.001,"tokens_per_s":1000,"tokens":640}
        {"step":20,"train_loss":0.6,"lr":0.001,"tokens_per_s":1100,"tokens":1280,"dev_loss":0.62,"dev_accuracy":0.66,"dev_macro_f1":0.65}
        {"step":30,"train_loss":0.5,"lr":0.001,"dev_loss":0.55,"dev_accuracy":0.72,"dev_macro_f1":0.71}
        {"step":40,"train_lo
        """, plan: #"{"task":"classification","tokens_per_step":64,"max_steps":40}"#)
    let records = try RunRecords(run: run)
    #expect(records.metrics.count == 3 && records.unreadableLines == 1)
    // A record without tokens (an evaluation's) gets them from the step and the plan.
    #expect(records.points("dev_accuracy", against: "tokens").map(\.x) == [1280, 1920])
    let (html, plots) = RunReport.page(records)
    #expect(plots.contains("dev-metrics-by-step") && plots.contains("dev-metrics-by-tokens"))
    // No figures, no plot: nothing here logged MFU, memory or gradient norms.
    #expect(!plots.contains("mfu") && !plots.contains("memory") && !plots.contains("gradient-norm"), "\(plots)")
    #expect(html.contains("1 line(s) of metrics.jsonl could not be read"))
    #expect(html.contains("accuracy 0.7200"))
  }

  @Test func aDirectoryThatIsNoRunIsRefusedByName() throws {
    let empty = FileManager.default.temporaryDirectory.appendingPathComponent("attn-report-empty-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
    let error = #expect(throws: InputError.self) { try RunReport.write(run: RunDirectory(path: empty, origin: "RUN_DIR")) }
    #expect(error?.description.contains("\(empty): not a run directory") == true, "\(String(describing: error))")
    #expect(!FileManager.default.fileExists(atPath: (empty as NSString).appendingPathComponent("report.html")))
  }
}
